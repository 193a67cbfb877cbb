//! The request workflow of the grant service with a real `[[policies]]` configuration, on
//! SQLite and on PostgreSQL (see `support/db.rs`): every rule that refuses a request, N-of-M
//! approval without self-approval, deny and cancel, auto-approval, extensions, break glass and
//! its review, request expiry, and the audit trail linking each step by its request id.

mod support {
    pub mod access;
    pub mod db;
    pub mod requests;
}

use std::time::Duration;

use bastion::access::{Ask, ExtendAsk};
use bastion::db::{ApprovalOutcome, Filed, GrantOrigin, RequestKind, RequestState};
use serde_json::{Value, json};
use support::access::Service;
use support::db::TestDb;
use support::requests::*;

async fn policy_rules_refuse_requests(db: TestDb) {
    let service = Service::new(&db, &config());
    let alice = |target, duration| ask("alice", target, duration);
    let login = |login: &str, ask: Ask| Ask {
        login: Some(login.into()),
        ..ask
    };
    let reason = |reason: Option<&str>, ask: Ask| Ask {
        reason: reason.map(str::to_string),
        ..ask
    };
    let no_reason = "policy databases requires a reason: add --reason TEXT (a ticket, an incident)";
    let cases: Vec<(Ask, &str)> = vec![
        (
            alice("db-1", 5 * HOUR),
            "--for 5h is longer than policy databases allows (max_duration = 4h)",
        ),
        (
            login("root", alice("db-1", HOUR)),
            r#"login "root" is not one policy databases grants on db-1 (logins: app)"#,
        ),
        (
            ask("erin", "db-1", HOUR),
            "you may not request db-1: policy databases takes requests from group:sre only",
        ),
        (
            ask("bob", "db-2", HOUR),
            "you may not request db-2: policy databases takes requests from group:sre only",
        ),
        (
            alice("lab-1", HOUR),
            "no policy covers target lab-1; only an administrator can grant it (bastion grant add)",
        ),
        (alice("db-9", HOUR), r#"no target named "db-9""#),
        (reason(None, alice("db-1", 2 * HOUR)), no_reason),
        (reason(Some("  "), alice("db-1", 2 * HOUR)), no_reason),
        (
            alice("db-1", Duration::ZERO),
            "--for must be longer than zero",
        ),
    ];
    for (asked, expected) in &cases {
        let answer = service.access.request_access(asked.clone()).await;
        assert_eq!(refused(answer), *expected, "{asked:?}");
    }
    let audit = service.audit();
    assert_eq!(audit.len(), cases.len(), "{audit:?}");
    for ((asked, expected), event) in cases.iter().zip(&audit) {
        let fields = json!({"event": "request.refused", "kind": "access", "rule": expected,
            "user": asked.user, "target": asked.target, "client": CLIENT});
        has(event, fields);
    }
    let db_requests = service.access.db().pending_requests(None).await.unwrap();
    assert!(db_requests.is_empty(), "{db_requests:?}");

    // Without a reason where none is required, the request says so.
    let web = service
        .pending(reason(None, ask("bob", "web-1", HOUR)))
        .await;
    assert_eq!(
        (web.reason.as_str(), web.logins),
        ("(no reason given)", vec!["www".to_string()])
    );

    let first = service.pending(alice("db-1", 2 * HOUR)).await;
    assert_eq!(
        refused(service.access.request_access(alice("db-1", 3 * HOUR)).await),
        format!(
            "you already have a pending request for db-1 ({0}); wait for it, or withdraw it with: ssh bastion cancel {0}",
            first.id
        )
    );
}

async fn approvals_need_distinct_approvers_never_the_requester(db: TestDb) {
    let service = Service::new(&db, &config());
    let access = &service.access;
    let request = service.pending(ask("alice", "db-1", 2 * HOUR)).await;
    let id = request.id.as_str();
    assert_eq!(
        (request.policy.as_str(), request.approvals_needed),
        ("databases", 2)
    );
    assert_eq!(request.logins, ["app"]);
    let decidable = access.decidable_by("bob").await.unwrap();
    assert_eq!(
        decidable.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [id]
    );
    assert!(access.decidable_by("alice").await.unwrap().is_empty());
    assert!(access.decidable_by("erin").await.unwrap().is_empty());

    assert_eq!(refused(service.approve(id, "alice").await), SELF_APPROVAL);
    assert_eq!(refused(service.approve(id, "erin").await), NOT_APPROVER);
    match ok(access.approve(id, by("bob"), Some("looks fine")).await) {
        ApprovalOutcome::Recorded(r) => assert_eq!(r.approvals.len(), 1),
        other => panic!("one of two approvals: {other:?}"),
    }
    assert_eq!(
        refused(service.approve(id, "bob").await),
        format!("you already approved {id}; it needs 2 distinct approvers (1 so far)")
    );
    let grant = granted(ok(service.approve(id, "carol").await));
    assert_eq!(grant.approved_by, "bob, carol");
    assert_eq!(
        (grant.origin, grant.request.as_deref()),
        (GrantOrigin::Request, Some(id))
    );
    assert_eq!(grant.expires_at, grant.starts_at + 2 * HOUR);
    assert_eq!(
        refused(service.approve(id, "dave").await),
        format!("{id} is no longer pending: it is approved")
    );
    assert_eq!(
        refused(service.approve("r-zz", "dave").await),
        r#"no request "r-zz"; see the pending ones with: ssh bastion requests"#
    );

    assert_eq!(
        service.names(id),
        [
            "request.filed",
            "request.approval",
            "request.approval",
            "request.approved",
            "grant.created",
            "grant.started"
        ]
    );
    let steps = service.trail(id);
    let filed = json!({"approvers": ["bob", "carol", "dave"], "approvals_needed": 2,
        "duration": "2h", "kind": "access", "user": "alice", "target": "db-1"});
    has(&steps[0], filed);
    let first = json!({"by": "bob", "approvals": 1, "needed": 2, "comment": "looks fine"});
    has(&steps[1], first);
    has(
        &steps[2],
        json!({"by": "carol", "approvals": 2, "comment": null}),
    );
    has(
        &steps[3],
        json!({"approved_by": "bob, carol", "grant": grant.id}),
    );
    has(
        &steps[4],
        json!({"origin": "request", "grant": grant.id, "approved_by": "bob, carol"}),
    );
    has(&steps[5], json!({"grant": grant.id}));

    // One approval of a 1-of-N policy; the requester, though an approver, does not count.
    let web = service.pending(ask("bob", "web-1", HOUR)).await;
    assert_eq!(
        refused(service.approve(&web.id, "bob").await),
        SELF_APPROVAL
    );
    let grant = granted(ok(service.approve(&web.id, "alice").await));
    assert_eq!(grant.approved_by, "alice");
    has(
        &service.trail(&web.id)[0],
        json!({"approvers": ["alice", "carol", "dave"]}),
    );
}

async fn a_denial_ends_the_request(db: TestDb) {
    let service = Service::new(&db, &config());
    let access = &service.access;
    let request = service.pending(ask("alice", "db-1", 2 * HOUR)).await;
    let id = request.id.as_str();
    ok(service.approve(id, "bob").await);
    assert_eq!(
        refused(access.deny(id, by("erin"), "no").await),
        NOT_APPROVER
    );
    assert_eq!(
        refused(access.deny(id, by("alice"), "no").await),
        SELF_APPROVAL
    );
    let denied = ok(access.deny(id, by("carol"), "use the replica").await);
    assert_eq!(
        (denied.state, denied.decided_by.as_deref()),
        (RequestState::Denied, Some("carol"))
    );
    let closed = format!("{id} is no longer pending: it is denied");
    assert_eq!(refused(service.approve(id, "dave").await), closed);
    assert_eq!(refused(access.deny(id, by("dave"), "again").await), closed);
    assert_eq!(refused(access.cancel(id, by("alice")).await), closed);
    assert!(access.db().list_grants(false).await.unwrap().is_empty());
    assert_eq!(
        service.names(id),
        ["request.filed", "request.approval", "request.denied"]
    );
    let denial = json!({"by": "carol", "reason": "use the replica", "client": CLIENT});
    has(&service.trail(id)[2], denial);
}

async fn only_the_requester_cancels(db: TestDb) {
    let service = Service::new(&db, &config());
    let access = &service.access;
    let request = service.pending(ask("alice", "db-1", 2 * HOUR)).await;
    let id = request.id.as_str();
    assert_eq!(
        refused(access.cancel(id, by("bob")).await),
        format!("{id} is not your request; only alice can cancel it")
    );
    assert_eq!(
        ok(access.cancel(id, by("alice")).await).state,
        RequestState::Cancelled
    );
    let closed = format!("{id} is no longer pending: it is cancelled");
    assert_eq!(refused(access.cancel(id, by("alice")).await), closed);
    assert_eq!(refused(service.approve(id, "bob").await), closed);
    assert_eq!(
        refused(access.cancel("nonsense", by("alice")).await),
        r#"no request "nonsense"; see the pending ones with: ssh bastion requests"#
    );
    assert_eq!(service.names(id), ["request.filed", "request.cancelled"]);
    // Withdrawn, it no longer blocks a new request for the same target.
    service.pending(ask("alice", "db-1", 2 * HOUR)).await;
}

async fn auto_approval_grants_at_once(db: TestDb) {
    let service = Service::new(&db, &config());
    let (request, grant) = service.auto(ask("alice", "db-1", HOUR)).await;
    assert_eq!(grant.origin, GrantOrigin::Auto);
    assert_eq!(grant.request.as_ref(), Some(&request.id));
    assert_eq!(grant.expires_at, grant.starts_at + HOUR);
    assert_eq!(
        service.names(&request.id),
        [
            "request.filed",
            "request.auto_approved",
            "grant.created",
            "grant.started"
        ]
    );
    let steps = service.trail(&request.id);
    let rule =
        json!({"rule": "databases.auto_approve[0]", "policy": "databases", "grant": grant.id});
    has(&steps[1], rule);
    has(&steps[2], json!({"origin": "auto", "grant": grant.id}));
    // Longer than the rule allows: it waits for approvers.
    service.pending(ask("alice", "db-2", 61 * MINUTE)).await;
}

async fn extensions_move_the_end_by_the_time_asked(db: TestDb) {
    let service = Service::new(&db, &config());
    let access = &service.access;
    let (_, grant) = service.auto(ask("alice", "db-1", HOUR)).await;
    let bobs = ExtendAsk {
        user: "bob".into(),
        ..extend(grant.id, HOUR)
    };
    assert_eq!(
        refused(access.request_extension(bobs).await),
        format!(
            r#"no grant or session of yours is "{}"; see yours with: ssh bastion grants"#,
            grant.id
        )
    );
    assert_eq!(
        refused(access.request_extension(extend(grant.id, 5 * HOUR)).await),
        "--for 5h is longer than policy databases allows (max_duration = 4h)"
    );

    let request = ok(access.request_extension(extend(grant.id, 2 * HOUR)).await).request;
    assert_eq!(request.state, RequestState::Pending);
    assert_eq!(
        (request.kind, request.grant),
        (RequestKind::Extend, Some(grant.id))
    );
    ok(service.approve(&request.id, "bob").await);
    match ok(service.approve(&request.id, "carol").await) {
        ApprovalOutcome::Extended {
            grant: extended,
            previous_expires_at,
            ..
        } => {
            assert_eq!(previous_expires_at, grant.expires_at);
            assert_eq!(extended.expires_at, grant.expires_at + 2 * HOUR);
            assert_eq!(extended.starts_at, grant.starts_at);
        }
        other => panic!("expected the grant extended: {other:?}"),
    }
    assert_eq!(
        service.names(&request.id),
        [
            "request.filed",
            "request.approval",
            "request.approval",
            "request.approved",
            "grant.extended"
        ]
    );
    let steps = service.trail(&request.id);
    has(
        &steps[0],
        json!({"kind": "extend", "grant": grant.id, "duration": "2h"}),
    );
    has(
        &steps[4],
        json!({"grant": grant.id, "approved_by": "bob, carol"}),
    );

    // By a session that ran under the grant. Half an hour is within auto_approve, but the
    // whole grant would outgrow the rule: people decide.
    let session = "6f1c1b1e-8d0e-4f4b-9d6a-2b8f0f4c9a11";
    access
        .db()
        .session_started(&session_of(session, &grant))
        .await
        .unwrap();
    let filed = ok(access.request_extension(extend(session, 30 * MINUTE)).await);
    assert_eq!(filed.request.state, RequestState::Pending);
    assert_eq!(filed.request.grant, Some(grant.id));
    ok(service.approve(&filed.request.id, "bob").await);
    ok(service.approve(&filed.request.id, "carol").await);
    let longer = access
        .db()
        .grant(grant.id)
        .await
        .unwrap()
        .unwrap()
        .expires_at;
    assert_eq!(longer, grant.expires_at + 2 * HOUR + 30 * MINUTE);
    let last = service.trail(&filed.request.id).pop().unwrap();
    has(
        &last,
        json!({"event": "grant.extended", "approved_by": "bob, carol"}),
    );

    // The grant revoked while the extension waited: the approval changes nothing.
    let request = ok(access.request_extension(extend(grant.id, 2 * HOUR)).await).request;
    ok(service.approve(&request.id, "bob").await);
    access.revoke_grant(grant.id, "root").await.unwrap();
    let before = access.db().grant(grant.id).await.unwrap();
    match ok(service.approve(&request.id, "carol").await) {
        ApprovalOutcome::GrantEnded(ended) => assert_eq!(ended.state, RequestState::Expired),
        other => panic!("the grant was revoked: {other:?}"),
    }
    assert_eq!(access.db().grant(grant.id).await.unwrap(), before);
    assert_eq!(
        service.names(&request.id),
        [
            "request.filed",
            "request.approval",
            "request.approval",
            "request.expired"
        ]
    );
    has(
        &service.trail(&request.id)[3],
        json!({"reason": ENDED_NOTE}),
    );
    assert_eq!(
        refused(access.request_extension(extend(grant.id, HOUR)).await),
        format!(
            "grant {} is revoked; ask for a new one: ssh bastion request db-1 --for 1h --reason '...'",
            grant.id
        )
    );
}

/// An extension an `auto_approve` rule approves leaves the same `request.auto_approved`
/// record, naming the rule, as an auto-approved request for access.
async fn an_auto_approved_extension_names_its_rule(db: TestDb) {
    let service = Service::new(&db, &config());
    let (_, grant) = service.auto(ask("alice", "db-1", 30 * MINUTE)).await;
    let filed = ok(service
        .access
        .request_extension(extend(grant.id, 30 * MINUTE))
        .await);
    assert_eq!(filed.request.state, RequestState::Approved);
    assert_eq!(
        service.names(&filed.request.id),
        ["request.filed", "request.auto_approved", "grant.extended"]
    );
    let rule = json!({"rule": "databases.auto_approve[0]", "grant": grant.id});
    has(&service.trail(&filed.request.id)[1], rule);
    // The grant now lasts the rule's whole hour: a chain of small extensions never outgrows
    // it without a person's yes.
    let next = ok(service
        .access
        .request_extension(extend(grant.id, MINUTE))
        .await);
    assert_eq!(next.request.state, RequestState::Pending);
}

async fn break_glass_is_for_the_named_and_reviewed_once(db: TestDb) {
    let service = Service::new(&db, &config());
    let access = &service.access;
    let not_named = "you may not break glass for db-1: no policy covering it names you in break_glass; file a request instead: ssh bastion request db-1 --for 1h --reason '...'";
    for user in ["erin", "bob"] {
        assert_eq!(
            refused(access.break_glass(glass(user, None, Some("fire"))).await),
            not_named
        );
    }
    assert_eq!(
        refused(access.break_glass(glass("alice", None, None)).await),
        "break glass needs a reason: add --reason TEXT (what is on fire)"
    );
    assert!(access.reviews().await.unwrap().is_empty());

    let asked = glass("alice", Some(10 * HOUR), Some("primary down"));
    let Filed { request, grant, .. } = ok(access.break_glass(asked).await);
    let grant = grant.unwrap();
    assert_eq!(grant.origin, GrantOrigin::BreakGlass);
    assert!(grant.review_required && grant.reviewed.is_none());
    assert_eq!(grant.starts_at, grant.created_at, "live at once");
    assert_eq!(
        grant.expires_at,
        grant.starts_at + 4 * HOUR,
        "capped at max_duration"
    );
    assert_eq!(
        access.reviews().await.unwrap(),
        std::slice::from_ref(&grant)
    );
    assert_eq!(
        refused(service.approve(&request.id, "bob").await),
        format!(
            "{} is a break-glass grant: review it with bastion review {}",
            request.id, grant.id
        )
    );

    assert_eq!(
        refused(access.review(grant.id, "alice", "mine", false).await),
        SELF_APPROVAL
    );
    assert_eq!(
        refused(access.review(grant.id, "erin", "hm", false).await),
        NOT_APPROVER
    );
    let reviewed = ok(access
        .review(grant.id, "bob", "failover was needed", false)
        .await);
    let review = reviewed.reviewed.unwrap();
    assert_eq!(
        (review.by.as_str(), review.comment.as_str()),
        ("bob", "failover was needed")
    );
    assert!(access.reviews().await.unwrap().is_empty());
    let again = refused(access.review(grant.id, "carol", "me too", false).await);
    let first_wins = format!("grant {} was already reviewed by bob at ", grant.id);
    assert!(again.starts_with(&first_wins), "{again}");
    let (_, auto) = service.auto(ask("alice", "db-2", HOUR)).await;
    assert_eq!(
        refused(access.review(auto.id, "bob", "x", false).await),
        format!(
            "grant {} was not taken by break glass; there is nothing to review",
            auto.id
        )
    );

    assert_eq!(
        service.names(&request.id),
        [
            "request.filed",
            "break_glass",
            "grant.created",
            "grant.started",
            "grant.reviewed"
        ]
    );
    let steps = service.trail(&request.id);
    has(&steps[0], json!({"kind": "break_glass", "approvers": []}));
    has(
        &steps[1],
        json!({"reason": "primary down", "grant": grant.id, "policy": "databases"}),
    );
    has(&steps[2], json!({"origin": "break_glass"}));
    has(
        &steps[4],
        json!({"by": "bob", "comment": "failover was needed"}),
    );
    let refusals = service
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "request.refused");
    assert_eq!(refusals.count(), 3, "every refused break glass is audited");
}

async fn undecided_requests_expire_once(db: TestDb) {
    let service = Service::new(&db, &config());
    let access = &service.access;
    let request = service.pending(ask("alice", "db-1", 2 * HOUR)).await;
    let id = request.id.as_str();
    assert_eq!(
        request.expires_at,
        request.created_at + 30 * MINUTE,
        "request_ttl"
    );
    ok(service.approve(id, "bob").await);
    let now = db.now_sql();
    db.execute(format!(
        "UPDATE access_requests SET expires_at = {now} - 1000 WHERE id = '{id}'"
    ))
    .await;
    assert_eq!(
        refused(service.approve(id, "carol").await),
        format!("{id} is no longer pending: it is expired (its request_ttl passed)")
    );
    access.record_expired().await.unwrap();
    access.record_expired().await.unwrap();
    assert_eq!(
        service.names(id),
        ["request.filed", "request.approval", "request.expired"]
    );
    has(
        &service.trail(id)[2],
        json!({"reason": "no decision before its request_ttl"}),
    );
    assert_eq!(
        refused(service.approve(id, "carol").await),
        format!("{id} is no longer pending: it is expired")
    );
    assert!(access.db().list_grants(false).await.unwrap().is_empty());
}

async fn a_later_start_is_audited_when_it_comes(db: TestDb) {
    let service = Service::new(&db, &config());
    let (request, grant) = starting_later(&service).await;
    service.access.record_expired().await.unwrap();
    assert_eq!(service.names(&request.id).last().unwrap(), "grant.created");

    let now = db.now_sql();
    db.execute(format!(
        "UPDATE grants SET starts_at = {now} - 1000 WHERE id = {}",
        grant.id
    ))
    .await;
    service.access.record_expired().await.unwrap();
    service.access.record_expired().await.unwrap();
    let steps = service.trail(&request.id);
    assert_eq!(steps.len(), 6, "{steps:?}");
    has(
        &steps[5],
        json!({"event": "grant.started", "grant": grant.id, "user": "alice"}),
    );
}

/// A grant whose whole window passed between two polls: its start is still reported, and
/// before its end.
async fn a_start_is_audited_before_the_end(db: TestDb) {
    let service = Service::new(&db, &config());
    let (_, grant) = starting_later(&service).await;
    let now = db.now_sql();
    db.execute(format!(
        "UPDATE grants SET starts_at = {now} - 5000, expires_at = {now} - 1000 WHERE id = {}",
        grant.id
    ))
    .await;
    service.access.record_expired().await.unwrap();
    let events: Vec<Value> = service
        .audit()
        .into_iter()
        .filter(|e| e["grant"] == grant.id)
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "request.approved",
            "grant.created",
            "grant.started",
            "grant.expired"
        ]
    );
}

/// Decisions and extensions that break a rule change nothing.
async fn malformed_decisions_are_refused(db: TestDb) {
    let service = Service::new(&db, &config());
    let access = &service.access;
    let request = service.pending(ask("alice", "db-1", 2 * HOUR)).await;
    let id = request.id.as_str();
    assert_eq!(
        refused(access.deny(id, by("bob"), "  ").await),
        "--reason must not be empty"
    );
    let answer = refused(access.approve(id, by("bob"), Some("ok\x1b[2J")).await);
    assert!(
        answer.starts_with("--comment must not contain control characters"),
        "{answer}"
    );
    let stored = access.db().request(id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.approvals.len()),
        (RequestState::Pending, 0)
    );

    // A grant for a login the policy does not grant cannot be extended under it.
    let root = access.db().add_grant(root_grant()).await.unwrap();
    assert_eq!(
        refused(access.request_extension(extend(root.id, HOUR)).await),
        format!(
            "grant {} allows login root, which policy databases does not grant; ask for a new grant instead",
            root.id
        )
    );

    // The administrator at the bastion's shell reviews outside the approver list.
    let grant = ok(access
        .break_glass(glass("alice", Some(HOUR), Some("down")))
        .await)
    .grant;
    let reviewed = ok(access.review(grant.unwrap().id, "root", "seen", true).await);
    assert_eq!(reviewed.reviewed.map(|r| r.by).as_deref(), Some("root"));
}

/// A policy asking more approvals than the approvers other than some requester can give:
/// that requester's request could never be approved, so it is refused (by the configuration,
/// or when asked) rather than filed to wait out its `request_ttl`.
async fn a_request_nobody_can_approve_is_not_filed(db: TestDb) {
    // web's approvers are alice, bob, carol and dave: bob asking leaves three.
    let text = config().replace("approvals = 1\n", "approvals = 4\n");
    if let Err(err) = bastion::config::Config::parse(&text, "bastion.toml") {
        assert!(err.to_string().contains("approvals"), "{err}");
        return;
    }
    let service = Service::new(&db, &text);
    let answer = service
        .access
        .request_access(ask("bob", "web-1", HOUR))
        .await;
    let answer = refused(answer);
    assert!(
        answer.contains("policy web") && answer.contains("approv"),
        "{answer}"
    );
}

on_both_databases!(
    policy_rules_refuse_requests,
    approvals_need_distinct_approvers_never_the_requester,
    a_denial_ends_the_request,
    only_the_requester_cancels,
    auto_approval_grants_at_once,
    extensions_move_the_end_by_the_time_asked,
    an_auto_approved_extension_names_its_rule,
    break_glass_is_for_the_named_and_reviewed_once,
    undecided_requests_expire_once,
    a_later_start_is_audited_when_it_comes,
    a_start_is_audited_before_the_end,
    malformed_decisions_are_refused,
    a_request_nobody_can_approve_is_not_filed,
);
