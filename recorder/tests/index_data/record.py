#!/usr/bin/env python3
"""Records the real terminal sessions used by recorder/tests/index*.rs as asciicast v2 files.

Runs bash (and vim) in a pseudo-terminal, types scripted keystrokes one key per input event
like a person would, resizes the pty mid-session (the kernel sends SIGWINCH), and writes what
came back as `o` events, keystrokes as `i` events and resizes as `r` events.

    python3 recorder/tests/index_data/record.py recorder/tests/index_data
"""
import fcntl, json, os, pty, select, struct, sys, tempfile, termios, time, codecs

UP, LEFT, ESC = "\x1b[A", "\x1b[D", "\x1b"


def set_size(fd, cols, rows):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def record(path, steps, cols=80, rows=24):
    home = tempfile.mkdtemp()
    env = {"TERM": "xterm-256color", "HOME": home, "PS1": "$ ", "LANG": "C.UTF-8",
           "PATH": "/usr/bin:/bin", "LS_COLORS": "di=01;34:ln=01;36:ex=01;32"}
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(home)
        set_size(0, cols, rows)
        os.execve("/bin/bash", ["bash", "--norc", "--noprofile"], env)
    start = time.monotonic()
    events = []
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def now():
        return round(time.monotonic() - start, 6)

    def pump(seconds):
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return True
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:
                return False
            if not data:
                return False
            text = decoder.decode(data)
            if text:
                events.append([now(), "o", text])

    pump(0.5)
    for step in steps:
        if step[0] == "type":
            for key in step[1]:
                events.append([now(), "i", key])
                os.write(fd, key.encode())
                pump(0.03)
            pump(step[2] if len(step) > 2 else 0.3)
        elif step[0] == "resize":
            new_cols, new_rows = step[1], step[2]
            set_size(fd, new_cols, new_rows)
            events.append([now(), "r", f"{new_cols}x{new_rows}"])
            pump(0.5)
    while pump(0.5):
        pass
    os.waitpid(pid, 0)
    header = {"version": 2, "width": cols, "height": rows, "timestamp": 1735787045,
              "env": {"TERM": "xterm-256color"}}
    with open(path, "w") as f:
        f.write(json.dumps(header) + "\n")
        for e in events:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")


def keys(text):
    """Keystrokes of `text`, treating escape sequences and controls as one key each."""
    out, i = [], 0
    while i < len(text):
        if text[i] == ESC and text[i + 1:i + 2] == "[":
            out.append(text[i:i + 3]); i += 3
        else:
            out.append(text[i]); i += 1
    return out


def main(out_dir):
    shell = [
        ("type", keys("echo helo" + LEFT + "l\r")),
        ("type", keys("ls --colr\x7f\x7flor=always /usr\r")),
        ("type", keys("printf '\\e[1;31mred\\e[0m \\e[42mgreen bg\\e[0m\\n'\r")),
        ("type", keys("rm -rf /tmp/nothing\x03")),
        ("type", keys("wrong command\x15whoami\r")),
        ("type", keys(UP + "\r")),
        ("type", keys("exit\r")),
    ]
    record(os.path.join(out_dir, "shell.cast"), shell)
    vim = [
        ("type", keys("vim -u NONE -N -c 'syntax on' -c 'set number' script.sh\r"), 1.0),
        ("type", keys("i#!/bin/sh\recho hello\rfor i in 1 2 3; do echo \"$i\"; done\r")),
        ("type", [ESC]),
        ("resize", 100, 30),
        ("type", keys(":w\r")),
        ("resize", 60, 20),
        ("type", keys(":q\r"), 0.5),
        ("type", keys("cat script.sh\r")),
        ("type", keys("exit\r")),
    ]
    record(os.path.join(out_dir, "vim.cast"), vim)


if __name__ == "__main__":
    main(sys.argv[1])
