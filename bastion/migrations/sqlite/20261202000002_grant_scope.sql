-- Least privilege inside a grant: which commands it admits and whether it allows a terminal.

-- JSON array of glob patterns the whole command must match; '[]' admits any command (and an
-- interactive shell), which is what every grant written before this column allowed.
ALTER TABLE grants ADD COLUMN commands TEXT NOT NULL DEFAULT '[]';
-- FALSE: no PTY on any channel this grant admits.
ALTER TABLE grants ADD COLUMN pty BOOLEAN NOT NULL DEFAULT TRUE;
