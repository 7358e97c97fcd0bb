//! Status entries (pure) and the writer against kube's tower-test mock of the API server.

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;

use std::sync::Arc;

use super::*;
use crate::api::ValidationError;

fn report(state: ObjectState) -> ObjectReport {
    ObjectReport { id: ObjectId::kubernetes("prod", "web"), generation: Some(7), state }
}

fn key() -> ServiceKey {
    ServiceKey::tcp([192, 0, 2, 1].into(), 80)
}

fn at(seconds: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
}

fn desired(backends: usize) -> ObjectReport {
    report(ObjectState::Desired { key: key(), backends })
}

#[test]
fn a_programmed_service_reports_its_backends() {
    let e = entry(&desired(3), "n1", &KernelOutcome::default(), None, &at(10)).unwrap();
    assert_eq!((e.node_name.as_str(), e.programmed, e.reason.as_str(), e.backends), ("n1", true, PROGRAMMED, Some(3)));
    assert_eq!(e.observed_generation, Some(7));
    assert_eq!(e.last_transition_time, Some(at(10)));
    let none = entry(&desired(0), "n1", &KernelOutcome::default(), None, &at(10)).unwrap();
    assert_eq!((none.programmed, none.reason.as_str(), none.backends), (true, NO_BACKENDS, Some(0)));
}

#[test]
fn the_transition_time_moves_only_with_programmed_or_reason() {
    let first = entry(&desired(3), "n1", &KernelOutcome::default(), None, &at(10)).unwrap();
    let more = entry(&desired(4), "n1", &KernelOutcome::default(), Some(&first), &at(20)).unwrap();
    assert_eq!(more.last_transition_time, Some(at(10)), "a backend count change is no transition");
    let refused =
        KernelOutcome { refused: [(key(), "invalid argument".to_owned())].into(), ..KernelOutcome::default() };
    let failed = entry(&desired(4), "n1", &refused, Some(&more), &at(30)).unwrap();
    assert_eq!((failed.programmed, failed.reason.as_str()), (false, KERNEL_REFUSED));
    assert_eq!(failed.message.as_deref(), Some("invalid argument"));
    assert_eq!(failed.last_transition_time, Some(at(30)));
}

#[test]
fn problems_name_what_went_wrong() {
    let invalid = report(ObjectState::Invalid {
        key: Some(key()),
        errors: vec![ValidationError::new(
            ObjectId::kubernetes("prod", "web"),
            "spec.scheduler",
            "unknown scheduler `x`",
        )],
    });
    let e = entry(&invalid, "n1", &KernelOutcome::default(), None, &at(1)).unwrap();
    assert_eq!((e.programmed, e.reason.as_str()), (false, INVALID));
    assert_eq!(e.message.as_deref(), Some("spec.scheduler: unknown scheduler `x`"));

    let conflict = report(ObjectState::Conflict { key: key(), winner: ObjectId::kubernetes("prod", "older") });
    let e = entry(&conflict, "n1", &KernelOutcome::default(), None, &at(1)).unwrap();
    assert_eq!(e.reason, CONFLICT);
    assert_eq!(e.message.as_deref(), Some("service TCP 192.0.2.1:80 is claimed by prod/older, which is older"));

    let down = KernelOutcome { pass_failed: Some("reading failed".to_owned()), ..KernelOutcome::default() };
    assert_eq!(entry(&desired(1), "n1", &down, None, &at(1)).unwrap().reason, PENDING);
    assert_eq!(entry(&report(ObjectState::NotSelected), "n1", &down, None, &at(1)), None);
}

/// Answers the next request with `answer`: its method, path and query, content type and body.
async fn answer_next(
    handle: &mut tower_test::mock::Handle<Request<Body>, Response<Body>>,
    answer: serde_json::Value,
) -> (String, String, String, serde_json::Value) {
    let (request, send) =
        tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await.expect("a request").expect("open");
    let method = request.method().to_string();
    let uri = request.uri().to_string();
    let content_type =
        request.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = request.into_body().collect_bytes().await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    send.send_response(Response::builder().body(Body::from(serde_json::to_vec(&answer).unwrap())).unwrap());
    (method, uri, content_type, json)
}

#[test]
fn events_mark_transitions_into_and_out_of_failure_only() {
    let conflict = report(ObjectState::Conflict { key: key(), winner: ObjectId::kubernetes("prod", "older") });
    let failing = entry(&conflict, "n1", &KernelOutcome::default(), None, &at(1)).unwrap();
    let event = transition_event(None, &failing).expect("into failure");
    assert_eq!((event.type_, event.reason.as_str()), (EventType::Warning, CONFLICT));
    assert!(event.note.unwrap().contains("on node n1: service TCP 192.0.2.1:80 is claimed by prod/older"));
    assert!(transition_event(Some(CONFLICT), &failing).is_none(), "no Event per pass");
    let ok = entry(&desired(2), "n1", &KernelOutcome::default(), None, &at(1)).unwrap();
    let back = transition_event(Some(CONFLICT), &ok).expect("out of failure");
    assert_eq!(back.type_, EventType::Normal);
    assert!(transition_event(None, &ok).is_none());
    assert!(transition_event(Some(PROGRAMMED), &ok).is_none());
}

#[tokio::test]
async fn a_conflict_is_reported_in_status_and_once_as_an_event() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut writer = StatusWriter::new(client, "n1", StatusReport::All, Reported::default());
    let conflict = report(ObjectState::Conflict { key: key(), winner: ObjectId::kubernetes("prod", "older") });
    let write = tokio::spawn(async move {
        writer.send(&changes(std::slice::from_ref(&conflict)), &KernelOutcome::default(), &at(1)).await;
        writer.send(&changes(&[conflict]), &KernelOutcome::default(), &at(2)).await;
    });
    let event_answer = serde_json::json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web.1", "namespace": "prod"}, "eventTime": "2026-01-01T00:00:00.000000Z"});
    let (method, uri, _, body) = answer_next(&mut handle, event_answer).await;
    assert_eq!(method, "POST");
    assert!(uri.starts_with("/apis/events.k8s.io/v1/namespaces/prod/events"), "{uri}");
    assert_eq!(body["reason"], CONFLICT);
    assert_eq!(body["type"], "Warning");
    assert_eq!(body["regarding"]["name"], "web");
    assert_eq!(body["reportingInstance"], "n1");
    let (_, uri, body) = next_request(&mut handle).await;
    assert!(uri.contains("/virtualservices/web/status"), "{uri}");
    assert_eq!(body["status"]["nodes"][0]["reason"], CONFLICT);
    write.await.unwrap();
    assert!(handle.next_request().await.is_none(), "the same conflict again: no status write, no Event");
}

/// `reports` as changed reports (none gone).
fn changes(reports: &[ObjectReport]) -> Vec<crate::source::ReportChange> {
    reports.iter().map(|r| (r.id.clone(), Some(r.clone()))).collect()
}

/// One request the writer made: method, path and query, and the body.
async fn next_request(
    handle: &mut tower_test::mock::Handle<Request<Body>, Response<Body>>,
) -> (String, String, serde_json::Value) {
    // The API server answers with the object; the writer does not read it beyond success.
    let answer = serde_json::json!({
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"address": "192.0.2.1", "port": 80},
    });
    let (method, uri, content_type, json) = answer_next(handle, answer).await;
    assert_eq!(content_type, "application/apply-patch+yaml", "server-side apply");
    assert!(json.is_object(), "the apply body is a JSON object: {json}");
    (method, uri, json)
}

#[tokio::test]
async fn the_writer_sends_this_nodes_entry_only_when_it_changes() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut writer = StatusWriter::new(client, "n1", StatusReport::All, Reported::default());
    let ok = KernelOutcome::default();

    let write = tokio::spawn(async move {
        writer.send(&changes(&[desired(2)]), &ok, &at(100)).await;
        // The same again: nothing is sent.
        writer.send(&changes(&[desired(2)]), &ok, &at(200)).await;
        // The node stops being selected: the entry is withdrawn (an empty list from this manager).
        writer.send(&changes(&[report(ObjectState::NotSelected)]), &ok, &at(300)).await;
        writer.send(&changes(&[report(ObjectState::NotSelected)]), &ok, &at(400)).await;
        writer
    });
    let (method, uri, body) = next_request(&mut handle).await;
    assert_eq!(method, "PATCH");
    assert!(uri.starts_with("/apis/ipvs.dev/v1alpha1/namespaces/prod/virtualservices/web/status?"), "{uri}");
    assert!(uri.contains("fieldManager=ipvs-reconciler%2Fn1") && uri.contains("force=true"), "{uri}");
    assert_eq!(body["apiVersion"], API_VERSION);
    assert_eq!(body["kind"], KIND);
    assert_eq!(body["status"]["nodes"][0]["nodeName"], "n1");
    assert_eq!(body["status"]["nodes"][0]["programmed"], true);
    assert_eq!(body["status"]["nodes"][0]["backends"], 2);
    assert!(body.get("metadata").is_none_or(|m| m.get("managedFields").is_none()));

    let (_, _, body) = next_request(&mut handle).await;
    assert_eq!(body["status"]["nodes"], serde_json::json!([]));
    let writer = write.await.unwrap();
    drop(writer);
    assert!(handle.next_request().await.is_none(), "no write without a change");
}

#[test]
fn failures_mode_keeps_only_entries_that_are_not_programmed() {
    let ok = entry(&desired(2), "n1", &KernelOutcome::default(), None, &at(1));
    assert_eq!(kept(StatusReport::Failures, ok.clone()), None);
    assert_eq!(kept(StatusReport::All, ok.clone()), ok);
    let conflict = report(ObjectState::Conflict { key: key(), winner: ObjectId::kubernetes("prod", "older") });
    let failing = entry(&conflict, "n1", &KernelOutcome::default(), None, &at(1));
    assert_eq!(kept(StatusReport::Failures, failing.clone()), failing);
    assert_eq!(kept(StatusReport::None, failing), None);
}

#[tokio::test]
async fn an_entry_left_by_an_earlier_run_is_withdrawn_and_a_healthy_fleet_writes_nothing() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    // The watch showed an entry of this node in prod/web's status (written by a run in mode all).
    let reported = Reported::default();
    let left = entry(&desired(2), "n1", &KernelOutcome::default(), None, &at(1)).unwrap();
    reported.lock().unwrap().insert(ObjectId::kubernetes("prod", "web"), left);
    let mut writer = StatusWriter::new(client, "n1", StatusReport::Failures, Arc::clone(&reported));
    let other = ObjectReport { id: ObjectId::kubernetes("prod", "api"), ..desired(1) };
    let write = tokio::spawn(async move {
        let ok = KernelOutcome::default();
        // Both programmed: web's old entry is withdrawn, api (never reported) gets no write.
        writer.send(&changes(&[desired(2), other.clone()]), &ok, &at(100)).await;
        writer.send(&changes(&[desired(2), other]), &ok, &at(200)).await;
    });
    let (_, uri, body) = next_request(&mut handle).await;
    assert!(uri.contains("/virtualservices/web/status"), "{uri}");
    assert_eq!(body["status"]["nodes"], serde_json::json!([]));
    write.await.unwrap();
    assert!(handle.next_request().await.is_none(), "a healthy fleet writes nothing in failures mode");
}

/// The entries one pass of `book` writes over `reports` at `now`, the watch showing `shown` for every object; and
/// how many Events it publishes. The writes are recorded as sent.
fn pass(
    book: &mut StatusBook,
    reports: &[ObjectReport],
    now: i64,
    shown: Option<&NodeStatus>,
) -> (Vec<Option<NodeStatus>>, usize) {
    let due = book.due(reports, &KernelOutcome::default(), &at(now), |_| shown.cloned());
    let events = due.iter().filter(|d| d.event.is_some()).count();
    let mut writes = Vec::new();
    for d in due {
        if let Some(wanted) = d.write {
            writes.push(wanted.clone());
            book.written(d.id, wanted);
        }
    }
    (writes, events)
}

#[test]
fn a_restarted_agent_leaves_its_entries_that_are_still_right_as_they_are() {
    // benches/api_load found it: every restart (a rolling update of the DaemonSet) rewrote every entry of every node
    // in mode all with a new lastTransitionTime, one watch event per entry for every agent.
    let conflict = report(ObjectState::Conflict { key: key(), winner: ObjectId::kubernetes("prod", "older") });
    for (mode, state) in
        [(StatusReport::All, desired(2)), (StatusReport::All, conflict.clone()), (StatusReport::Failures, conflict)]
    {
        let mut first = StatusBook::new("n1", mode);
        let (writes, _) = pass(&mut first, std::slice::from_ref(&state), 100, None);
        let shown = writes[0].clone().expect("an entry");
        // The agent restarts: a new book, the watch shows what the first run wrote.
        let mut restarted = StatusBook::new("n1", mode);
        let (writes, events) = pass(&mut restarted, std::slice::from_ref(&state), 500, Some(&shown));
        assert!(writes.is_empty(), "{mode:?} {:?}: the entry in place is still right", state.state);
        assert_eq!(events, 0, "{mode:?} {:?}: no Event repeated", state.state);
        assert!(pass(&mut restarted, std::slice::from_ref(&state), 600, Some(&shown)).0.is_empty());
    }
    // A real change after the restart keeps the transition time of the earlier run.
    let mut first = StatusBook::new("n1", StatusReport::All);
    let shown = pass(&mut first, &[desired(2)], 100, None).0[0].clone().unwrap();
    let mut restarted = StatusBook::new("n1", StatusReport::All);
    let (writes, _) = pass(&mut restarted, &[desired(3)], 500, Some(&shown));
    let written = writes[0].clone().unwrap();
    assert_eq!((written.backends, written.last_transition_time), (Some(3), Some(at(100))));
    // An entry a restarted agent no longer wants is withdrawn, once.
    let mut restarted = StatusBook::new("n1", StatusReport::Failures);
    assert_eq!(pass(&mut restarted, &[desired(2)], 500, Some(&shown)).0, vec![None]);
    assert!(pass(&mut restarted, &[desired(2)], 600, None).0.is_empty());
}

#[test]
fn an_object_deleted_and_created_again_gets_its_entry_again() {
    // Found by reading benches/api_load's model: a VirtualService replaced within one quiet period (same name, same
    // generation, same state) kept the record of what was sent to the old one, so the new one never got an entry.
    let mut book = StatusBook::new("n1", StatusReport::All);
    let (writes, _) = pass(&mut book, &[desired(2)], 10, None);
    assert_eq!(writes.len(), 1);
    let (writes, _) = pass(&mut book, &[desired(2)], 20, None);
    assert!(writes.is_empty(), "nothing changed: nothing is sent");
    book.forget([ObjectId::kubernetes("prod", "web")]);
    let (writes, _) = pass(&mut book, &[desired(2)], 30, None);
    assert_eq!(writes.len(), 1, "the new object gets this node's entry");
    assert_eq!(writes[0].as_ref().and_then(|e| e.last_transition_time.clone()), Some(at(30)));
}

/// Answers the next request with a 500 from the API server; its path.
async fn fail_next(handle: &mut tower_test::mock::Handle<Request<Body>, Response<Body>>) -> String {
    let (request, send) =
        tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await.expect("a request").expect("open");
    let uri = request.uri().to_string();
    let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "etcd is down", "reason": "InternalError", "code": 500});
    send.send_response(Response::builder().status(500).body(Body::from(serde_json::to_vec(&status).unwrap())).unwrap());
    uri
}

#[tokio::test]
async fn the_writer_looks_only_at_what_changed_and_retries_what_failed() {
    use crate::api::{Age, SourceObject};
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut writer = StatusWriter::new(client, "n1", StatusReport::All, Reported::default());
    let desired = DesiredState::new();
    for (name, address, created) in [("api", "192.0.2.2", 1), ("web", "192.0.2.1", 2)] {
        let object = SourceObject {
            id: ObjectId::kubernetes("prod", name),
            age: Age::Created { seconds: created, nanos: 0 },
            spec: serde_yaml::from_str(&format!("address: {address}\nport: 80\n")).unwrap(),
            generation: Some(1),
        };
        desired.update(|index| (index.apply(object), ()));
    }
    let refused =
        KernelOutcome { refused: [(key(), "invalid argument".to_owned())].into(), ..KernelOutcome::default() };
    let write = tokio::spawn(async move {
        let ok = KernelOutcome::default();
        let first = writer.write(&desired, &ok, &at(1)).await;
        let retried = writer.write(&desired, &ok, &at(2)).await;
        let nothing = writer.write(&desired, &ok, &at(3)).await;
        let refusal = writer.write(&desired, &refused, &at(4)).await;
        let same = writer.write(&desired, &refused, &at(5)).await;
        (first, retried, nothing, refusal, same)
    });
    // The first call looks at every object: api's write fails, web's is made.
    assert!(fail_next(&mut handle).await.contains("/virtualservices/api/status"));
    let (_, uri, _) = next_request(&mut handle).await;
    assert!(uri.contains("/virtualservices/web/status"), "{uri}");
    // Nothing changed, but api's failed write is due again, and only it.
    let (_, uri, body) = next_request(&mut handle).await;
    assert!(uri.contains("/virtualservices/api/status"), "{uri}");
    assert_eq!(body["status"]["nodes"][0]["reason"], NO_BACKENDS);
    // The kernel refuses web's service: its entry (and an Event), not api's.
    let event_answer = serde_json::json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web.1", "namespace": "prod"}, "eventTime": "2026-01-01T00:00:00.000000Z"});
    let (method, _, _, event) = answer_next(&mut handle, event_answer).await;
    assert_eq!((method.as_str(), event["reason"].as_str()), ("POST", Some(KERNEL_REFUSED)));
    let (_, uri, body) = next_request(&mut handle).await;
    assert!(uri.contains("/virtualservices/web/status"), "{uri}");
    assert_eq!(body["status"]["nodes"][0]["reason"], KERNEL_REFUSED);
    let counts = write.await.unwrap();
    assert_eq!(counts, ((1, 1), (1, 0), (0, 0), (1, 0), (0, 0)));
    assert!(handle.next_request().await.is_none(), "no more writes");
}

#[test]
fn the_kernel_outcome_says_which_entries_it_changes() {
    let ok = KernelOutcome::default();
    let refused =
        KernelOutcome { refused: [(key(), "invalid argument".to_owned())].into(), ..KernelOutcome::default() };
    assert_eq!(kernel_changes(&ok, &ok), ReportsWanted::default());
    assert_eq!(kernel_changes(&ok, &refused).keys, [key()].into());
    assert_eq!(kernel_changes(&refused, &ok).keys, [key()].into());
    let other = KernelOutcome { refused: [(key(), "no memory".to_owned())].into(), ..KernelOutcome::default() };
    assert_eq!(kernel_changes(&refused, &other).keys, [key()].into(), "another reason is another message");
    let down = KernelOutcome { pass_failed: Some("read failed".to_owned()), ..KernelOutcome::default() };
    assert!(kernel_changes(&ok, &down).all && kernel_changes(&down, &ok).all);
}

#[test]
fn a_checked_service_reports_its_healthy_and_unhealthy_backends() {
    use crate::agent::weights::HealthSummary;
    use crate::model::DestKey;
    let summary = HealthSummary {
        healthy: 2,
        unhealthy: vec![(DestKey::new([10, 0, 0, 3].into(), 8080), Some("connection refused".to_owned()))],
    };
    let kernel = KernelOutcome { health: [(key(), summary.clone())].into(), ..KernelOutcome::default() };
    let e = entry(&desired(3), "n1", &kernel, None, &at(1)).unwrap();
    assert_eq!((e.healthy_backends, e.unhealthy_backends), (Some(2), Some(1)));
    assert_eq!(e.unhealthy[0].address, "10.0.0.3:8080");
    assert_eq!(e.unhealthy[0].error.as_deref(), Some("connection refused"));
    assert!(e.programmed, "a failing backend does not make the service unprogrammed");
    let plain = entry(&desired(3), "n1", &KernelOutcome::default(), None, &at(1)).unwrap();
    assert_eq!((plain.healthy_backends, plain.unhealthy_backends, plain.unhealthy.len()), (None, None, 0));
    // A change of what the checks say is a change of that service's entry.
    let healed = KernelOutcome {
        health: [(key(), HealthSummary { healthy: 3, unhealthy: vec![] })].into(),
        ..KernelOutcome::default()
    };
    assert_eq!(kernel_changes(&kernel, &healed).keys, [key()].into());
    assert_eq!(kernel_changes(&kernel, &kernel.clone()), ReportsWanted::default());
}

/// A pass record over `result`, which looked at `scope` (`None`: a full pass).
fn record<'a>(
    result: &'a Result<crate::engine::PassReport<std::io::Error>, super::super::PassError<std::io::Error>>,
    scope: Option<&'a BTreeSet<ServiceKey>>,
    desired: &'a crate::source::Snapshot,
    health: &'a BTreeMap<ServiceKey, HealthSummary>,
) -> PassRecord<'a, std::io::Error> {
    PassRecord {
        kind: super::super::PassKind::Change,
        full: scope.is_none(),
        scope,
        desired,
        result,
        duration: Duration::ZERO,
        owned: 0,
        owned_addresses: 0,
        health,
    }
}

fn refused_add(key: ServiceKey) -> crate::engine::OpFailure<std::io::Error> {
    let service = crate::model::Service::new(key, crate::model::ServiceConfig::new(key.family(), "wlc"));
    crate::engine::OpFailure {
        op: crate::model::Op::AddService(service),
        object: None,
        error: std::io::Error::other("invalid argument"),
    }
}

#[test]
fn a_change_pass_keeps_the_refusals_of_services_it_did_not_look_at_and_a_full_pass_forgets_them() {
    let (web, dns) = (key(), ServiceKey::tcp([192, 0, 2, 2].into(), 53));
    let (snapshot, health) = (crate::source::Snapshot::default(), BTreeMap::new());
    let mut outcomes = KernelOutcomes::default();

    let both = Ok(crate::engine::PassReport {
        failures: vec![refused_add(web), refused_add(dns)],
        ..crate::engine::PassReport::default()
    });
    let outcome = outcomes.after(&record(&both, None, &snapshot, &health));
    assert_eq!(outcome.refused.keys().copied().collect::<Vec<_>>(), vec![web, dns]);
    assert!(outcome.refused[&web].contains("invalid argument"), "{:?}", outcome.refused);
    assert_eq!(outcome.pass_failed, None);

    // A change pass over `web` alone that succeeded clears `web` and leaves what the full pass found of `dns`.
    let clean = Ok(crate::engine::PassReport::default());
    let only_web: BTreeSet<ServiceKey> = [web].into();
    let outcome = outcomes.after(&record(&clean, Some(&only_web), &snapshot, &health));
    assert_eq!(outcome.refused.keys().copied().collect::<Vec<_>>(), vec![dns]);

    // A failed pass changes no refusal and says why.
    let failed = Err(super::super::PassError::Connect("no netlink".into()));
    let outcome = outcomes.after(&record(&failed, None, &snapshot, &health));
    assert_eq!(outcome.refused.keys().copied().collect::<Vec<_>>(), vec![dns]);
    assert!(outcome.pass_failed.as_deref().is_some_and(|why| why.contains("no netlink")), "{outcome:?}");

    // A full pass that succeeded forgets every refusal.
    let outcome = outcomes.after(&record(&clean, None, &snapshot, &health));
    assert!(outcome.refused.is_empty() && outcome.pass_failed.is_none(), "{outcome:?}");
}

#[test]
fn unanswered_operations_and_an_address_that_could_not_be_added_make_a_service_not_programmed() {
    let (web, dns) = (key(), ServiceKey::tcp([192, 0, 2, 2].into(), 53));
    let (snapshot, health) = (crate::source::Snapshot::default(), BTreeMap::new());
    let unanswered = refused_add(web).op;
    let address = crate::engine::AddressFailure {
        addr: [192, 0, 2, 2].into(),
        adding: true,
        services: vec![dns],
        error: crate::netif::NetifError::Vanished { name: "ipvs0".to_owned() },
    };
    let removal = crate::engine::AddressFailure {
        addr: [192, 0, 2, 3].into(),
        adding: false,
        services: vec![],
        error: crate::netif::NetifError::Vanished { name: "ipvs0".to_owned() },
    };
    let report = Ok(crate::engine::PassReport {
        unanswered: vec![unanswered],
        addresses: crate::engine::AddressReport { failures: vec![address, removal], ..Default::default() },
        ..crate::engine::PassReport::default()
    });
    let outcome = KernelOutcomes::default().after(&record(&report, None, &snapshot, &health));
    assert!(outcome.refused[&web].contains("no answer from the kernel"), "{:?}", outcome.refused);
    assert!(outcome.refused[&dns].contains("adding its address 192.0.2.2 failed"), "{:?}", outcome.refused);
    assert_eq!(outcome.refused.len(), 2, "a failed removal refuses no service");
}

#[test]
fn a_service_another_program_removed_says_so_once_while_programmed() {
    let (snapshot, health) = (crate::source::Snapshot::default(), BTreeMap::new());
    let mut outcomes = KernelOutcomes::default();
    let director = crate::engine::DirectorReport { kube_proxy_ipvs: Some(true), ..Default::default() };
    let removed =
        Ok(crate::engine::PassReport { vanished: vec![key()], director, ..crate::engine::PassReport::default() });
    let outcome = outcomes.after(&record(&removed, None, &snapshot, &health));
    let first = entry(&desired(2), "n1", &outcome, None, &at(10)).unwrap();
    assert_eq!((first.programmed, first.reason.as_str()), (true, PROGRAMMED), "added back: programmed");
    let message = first.message.clone().unwrap_or_default();
    assert!(message.starts_with("removed from the kernel by another program and added back: kube-proxy"), "{message}");
    assert!(message.contains("--ipvs-exclude-cidrs"), "{message}");

    // Later passes find it in place: the entry keeps its message (no write per pass, no flapping).
    let clean = Ok(crate::engine::PassReport::default());
    let outcome = outcomes.after(&record(&clean, None, &snapshot, &health));
    let later = entry(&desired(2), "n1", &outcome, Some(&first), &at(20)).unwrap();
    assert_eq!(later, first);

    // Without kube-ipvs0 the message does not blame kube-proxy; another service is not concerned.
    let mut alone = KernelOutcome { removed_by_others: [key()].into(), ..KernelOutcome::default() };
    let message = entry(&desired(0), "n1", &alone, None, &at(1)).unwrap().message.unwrap_or_default();
    assert!(message.contains("something else on this node deletes IPVS services"), "{message}");
    alone.removed_by_others.clear();
    assert_eq!(entry(&desired(0), "n1", &alone, None, &at(1)).unwrap().message, None);
}
