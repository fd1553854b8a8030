//! The planners as a table: a situation (resource, stored Secret, what Ivy holds, the time, the
//! dialect) in, the one next decision out. No Kubernetes, no Ivy, no clock.

use std::time::Duration;

use jiff::Timestamp;

use super::decision::{Decision, Duplicate, Facts, Inputs, Lookup, Purpose, Remote};
use super::drift::fingerprint;
use super::plan;
use crate::controller::desired::desired_request;
use crate::controller::marker::marked_description;
use crate::controller::outcome::Retry;
use crate::controller::secret::StoredSecret;
use crate::controller::status::Reason;
use crate::controller::test_support::{ALL_CAPABILITIES, sub};
use crate::crd::{ANNOTATION_ADOPT, ANNOTATION_ROTATE, WebhookSubscription};
use crate::ivy::{Capabilities, RemoteSubscription, SigningSecret, SubscriptionPatch};

const GRACE: Duration = Duration::from_secs(300);
const RESYNC: Duration = Duration::from_secs(600);
const SERVICE: Capabilities = Capabilities {
    get: false,
    list: true,
    delete: true,
    description: false,
    active_flag: false,
    per_subscription_secret: false,
    trigger_test: true,
};

fn now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn ago(secs: i64) -> Timestamp {
    now() - jiff::SignedDuration::from_secs(secs)
}

/// A subscription at Ivy exactly as the spec of [`sub`] wants it.
fn matching_remote(id: &str) -> RemoteSubscription {
    let desired = desired_request(&sub(), "uid-1", &sub().spec.url);
    RemoteSubscription {
        id: id.into(),
        url: desired.url,
        events: desired.events,
        description: desired.description,
        active: Some(desired.active),
    }
}

fn foreign_remote(id: &str) -> RemoteSubscription {
    RemoteSubscription {
        description: Some(marked_description(None, "someone-else")),
        ..matching_remote(id)
    }
}

/// A subscription made at Ivy by hand: no marker.
fn unmarked_remote(id: &str) -> RemoteSubscription {
    RemoteSubscription {
        description: Some("made by hand".into()),
        ..matching_remote(id)
    }
}

fn stored_with(id: &str) -> StoredSecret {
    StoredSecret {
        subscription_id: Some(id.into()),
        signing_secret: Some(SigningSecret::new("whsec_current")),
        url: Some(sub().spec.url),
        ..StoredSecret::default()
    }
}

/// One situation of the table.
struct Situation {
    sub: WebhookSubscription,
    facts: Facts,
    capabilities: Capabilities,
    app_secret: Option<SigningSecret>,
    verified: bool,
    needs_owner: bool,
    deleting: bool,
    allow_adoption: bool,
    recorded_id: Option<String>,
}

impl Situation {
    fn new() -> Self {
        Self {
            sub: sub(),
            facts: Facts::default(),
            capabilities: ALL_CAPABILITIES,
            app_secret: None,
            verified: false,
            needs_owner: false,
            deleting: false,
            allow_adoption: true,
            recorded_id: None,
        }
    }
    fn adoption_off(mut self) -> Self {
        self.allow_adoption = false;
        self
    }
    /// The status records `id` (the operator verified it as this resource's).
    fn recorded(mut self, id: &str) -> Self {
        self.recorded_id = Some(id.into());
        self
    }
    fn deleting(mut self) -> Self {
        self.deleting = true;
        self
    }
    fn annotate(mut self, key: &str, value: &str) -> Self {
        self.sub
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }
    fn stored(mut self, stored: StoredSecret) -> Self {
        self.facts.stored = stored;
        self
    }
    fn facts(mut self, change: impl FnOnce(&mut Facts)) -> Self {
        change(&mut self.facts);
        self
    }
    fn service(mut self, app_secret: &str) -> Self {
        self.capabilities = SERVICE;
        self.app_secret = Some(SigningSecret::new(app_secret));
        self
    }
    fn verified(mut self) -> Self {
        self.verified = true;
        self
    }
    fn needs_owner(mut self) -> Self {
        self.needs_owner = true;
        self
    }
    fn decide(&self) -> Decision {
        let inputs = Inputs {
            sub: &self.sub,
            uid: "uid-1",
            capabilities: self.capabilities,
            app_secret: self.app_secret.as_ref(),
            now: now(),
            rotation_grace_period: GRACE,
            resync_interval: RESYNC,
            verified: self
                .verified
                .then(|| fingerprint(&self.sub, &self.facts.stored)),
            needs_owner: self.needs_owner,
            template_outdated: false,
            deleting: self.deleting,
            allow_adoption: self.allow_adoption,
            recorded_id: self.recorded_id.as_deref(),
        };
        plan(&inputs, &self.facts)
    }
}

fn stop_reason(decision: &Decision) -> Option<Reason> {
    match decision {
        Decision::Stop { outcome, .. } => Some(outcome.reason),
        _ => None,
    }
}

fn duplicate(holder: Lookup<RemoteSubscription>) -> Duplicate {
    Duplicate {
        holder,
        ..Duplicate::new(sub().spec.url)
    }
}

#[test]
fn planning_table() {
    let url_drift = RemoteSubscription {
        url: "https://elsewhere.example.com/hook".into(),
        ..matching_remote("sub-1")
    };
    let in_grace = StoredSecret {
        previous_subscription_id: Some("sub-0".into()),
        previous_signing_secret: Some(SigningSecret::new("whsec_old")),
        rotation: Some("r1".into()),
        rotated_at: Some(ago(10)),
        ..stored_with("sub-1")
    };
    let grace_over = StoredSecret {
        rotated_at: Some(ago(400)),
        ..in_grace.clone()
    };
    let cases: Vec<(&str, Situation, Decision)> = vec![
        (
            "fresh resource: create",
            Situation::new(),
            Decision::Create(Purpose::Initial),
        ),
        (
            "Secret with an id, not verified lately: read it",
            Situation::new().stored(stored_with("sub-1")),
            Decision::Read { id: "sub-1".into() },
        ),
        (
            "Secret with an id verified within the resync interval: nothing to do",
            Situation::new().stored(stored_with("sub-1")).verified(),
            Decision::Done,
        ),
        (
            "verified, but the Secret lacks its owner reference: read",
            Situation::new()
                .stored(stored_with("sub-1"))
                .verified()
                .needs_owner(),
            Decision::Read { id: "sub-1".into() },
        ),
        (
            "remote matches the spec: done",
            Situation::new()
                .stored(stored_with("sub-1"))
                .facts(|f| f.remote = Remote::Present(matching_remote("sub-1"))),
            Decision::Done,
        ),
        (
            "drift at Ivy: revert exactly the changed field",
            Situation::new()
                .stored(stored_with("sub-1"))
                .facts(|f| f.remote = Remote::Present(url_drift.clone())),
            Decision::Revert {
                id: "sub-1".into(),
                patch: SubscriptionPatch {
                    url: Some(sub().spec.url),
                    ..SubscriptionPatch::default()
                },
            },
        ),
        (
            "remote missing at Ivy: replace it",
            Situation::new().facts(|f| f.vanished = Some("sub-1".into())),
            Decision::Create(Purpose::Replace {
                vanished: "sub-1".into(),
            }),
        ),
        (
            "remote missing wins over an adoption annotation already answered",
            Situation::new()
                .annotate(ANNOTATION_ADOPT, "sub-1")
                .facts(|f| f.vanished = Some("sub-1".into())),
            Decision::Create(Purpose::Replace {
                vanished: "sub-1".into(),
            }),
        ),
        (
            "rotation requested, verified lately: read first",
            Situation::new()
                .annotate(ANNOTATION_ROTATE, "r1")
                .stored(stored_with("sub-1"))
                .verified(),
            Decision::Read { id: "sub-1".into() },
        ),
        (
            "rotation requested and in step: rotate",
            Situation::new()
                .annotate(ANNOTATION_ROTATE, "r1")
                .stored(stored_with("sub-1"))
                .facts(|f| f.remote = Remote::InStep),
            Decision::Create(Purpose::Rotate { value: "r1".into() }),
        ),
        (
            "rotation already answered: nothing to do",
            Situation::new()
                .annotate(ANNOTATION_ROTATE, "r1")
                .stored(StoredSecret {
                    rotation: Some("r1".into()),
                    ..stored_with("sub-1")
                })
                .facts(|f| f.remote = Remote::InStep),
            Decision::Done,
        ),
        (
            "new rotation requested during a grace period: blocked until it ends",
            Situation::new()
                .annotate(ANNOTATION_ROTATE, "r2")
                .stored(in_grace.clone())
                .facts(|f| f.remote = Remote::InStep),
            Decision::Done,
        ),
        (
            "grace period over: finish the rotation first",
            Situation::new().stored(grace_over.clone()),
            Decision::FinishRotation {
                previous: Some("sub-0".into()),
            },
        ),
        (
            "adoption annotation: read the subscription to adopt",
            Situation::new().annotate(ANNOTATION_ADOPT, "sub-9"),
            Decision::ReadForAdoption { id: "sub-9".into() },
        ),
        (
            "unmarked adoption target: ask whether another resource claims it",
            Situation::new()
                .annotate(ANNOTATION_ADOPT, "sub-9")
                .facts(|f| f.adoption = Lookup::Found(unmarked_remote("sub-9"))),
            Decision::CheckClaim {
                id: "sub-9".into(),
                marker_uid: None,
            },
        ),
        (
            "unmarked adoption target nobody claims: adopt it",
            Situation::new()
                .annotate(ANNOTATION_ADOPT, "sub-9")
                .facts(|f| {
                    f.adoption = Lookup::Found(unmarked_remote("sub-9"));
                    f.claims.push(("sub-9".into(), None));
                }),
            Decision::Adopt(unmarked_remote("sub-9")),
        ),
        (
            "adoption target with another resource's marker: is that resource alive?",
            Situation::new()
                .annotate(ANNOTATION_ADOPT, "sub-9")
                .facts(|f| f.adoption = Lookup::Found(foreign_remote("sub-9"))),
            Decision::CheckClaim {
                id: "sub-9".into(),
                marker_uid: Some("someone-else".into()),
            },
        ),
        (
            "a Secret kept by deletionPolicy Orphan, taken back (the old resource is gone)",
            Situation::new().stored(stored_with("sub-5")).facts(|f| {
                f.remote = Remote::Present(foreign_remote("sub-5"));
                f.claims.push(("sub-5".into(), None));
            }),
            Decision::MarkOwned {
                id: "sub-5".into(),
                description: matching_remote("sub-5").description.unwrap(),
            },
        ),
        (
            "adoption target with our own marker (a lost secret): adopt it",
            Situation::new()
                .annotate(ANNOTATION_ADOPT, "sub-9")
                .facts(|f| f.adoption = Lookup::Found(matching_remote("sub-9"))),
            Decision::Adopt(matching_remote("sub-9")),
        ),
        (
            "just adopted: mark it as ours before anything else changes",
            Situation::new()
                .stored(StoredSecret {
                    adopted: Some("sub-9".into()),
                    signing_secret: None,
                    ..stored_with("sub-9")
                })
                .facts(|f| {
                    f.remote = Remote::Present(RemoteSubscription {
                        url: "https://elsewhere.example.com/hook".into(),
                        ..unmarked_remote("sub-9")
                    });
                    f.claims.push(("sub-9".into(), None));
                }),
            Decision::MarkOwned {
                id: "sub-9".into(),
                description: matching_remote("sub-9").description.unwrap(),
            },
        ),
        (
            "adopted and marked: the rest of the spec is restored",
            Situation::new()
                .stored(StoredSecret {
                    adopted: Some("sub-9".into()),
                    signing_secret: None,
                    ..stored_with("sub-9")
                })
                .facts(|f| {
                    f.remote = Remote::Present(RemoteSubscription {
                        url: "https://elsewhere.example.com/hook".into(),
                        ..matching_remote("sub-9")
                    });
                }),
            Decision::Revert {
                id: "sub-9".into(),
                patch: SubscriptionPatch {
                    url: Some(sub().spec.url),
                    ..SubscriptionPatch::default()
                },
            },
        ),
        (
            "recorded in the status: drift in the description is plain drift",
            Situation::new()
                .recorded("sub-1")
                .stored(stored_with("sub-1"))
                .facts(|f| f.remote = Remote::Present(unmarked_remote("sub-1"))),
            Decision::Revert {
                id: "sub-1".into(),
                patch: SubscriptionPatch {
                    description: matching_remote("sub-1").description,
                    ..SubscriptionPatch::default()
                },
            },
        ),
        (
            "duplicate URL: find who holds it",
            Situation::new().facts(|f| f.duplicate = Some(duplicate(Lookup::NotDone))),
            Decision::FindUrlHolder {
                url: sub().spec.url,
            },
        ),
        (
            "duplicate URL held by a leftover of ours: delete it",
            Situation::new().facts(|f| {
                f.duplicate = Some(duplicate(Lookup::Found(matching_remote("sub-5"))));
            }),
            Decision::DeleteUrlHolder { id: "sub-5".into() },
        ),
        (
            "our leftover deleted: retry soon",
            Situation::new().facts(|f| {
                let mut d = duplicate(Lookup::Found(matching_remote("sub-5")));
                d.cleared = true;
                f.duplicate = Some(d);
            }),
            Decision::RetrySoon,
        ),
        (
            "first create in the happy path: no list, done",
            Situation::new().stored(stored_with("sub-1")).facts(|f| {
                f.created = true;
                f.remote = Remote::InStep;
            }),
            Decision::Done,
        ),
        (
            "interrupted attempt, no subscription yet: create first (a replay is kept)",
            Situation::new().facts(|f| f.interrupted = true),
            Decision::Create(Purpose::Initial),
        ),
        (
            "interrupted attempt, then a create: sweep leftovers once",
            Situation::new().stored(stored_with("sub-1")).facts(|f| {
                f.interrupted = true;
                f.created = true;
                f.remote = Remote::InStep;
            }),
            Decision::SweepLeftovers,
        ),
        (
            "interrupted attempt and nothing left to create: sweep",
            Situation::new().stored(stored_with("sub-1")).facts(|f| {
                f.interrupted = true;
                f.remote = Remote::InStep;
            }),
            Decision::SweepLeftovers,
        ),
        (
            "interrupted attempt, swept: done",
            Situation::new().stored(stored_with("sub-1")).facts(|f| {
                f.interrupted = true;
                f.created = true;
                f.swept = true;
                f.remote = Remote::InStep;
            }),
            Decision::Done,
        ),
        (
            "service dialect without description: create, and no sweep is possible",
            Situation::new().service("whsec_app"),
            Decision::Create(Purpose::Initial),
        ),
        (
            "service dialect after an interrupted attempt: nothing to sweep with",
            Situation::new()
                .service("whsec_current")
                .stored(stored_with("sub-1"))
                .facts(|f| {
                    f.interrupted = true;
                    f.created = true;
                    f.remote = Remote::InStep;
                }),
            Decision::Done,
        ),
        (
            "service dialect, the app signing secret changed: the Secret follows",
            Situation::new()
                .service("whsec_new_app")
                .stored(stored_with("sub-1"))
                .facts(|f| f.remote = Remote::InStep),
            Decision::FollowAppSecret(SigningSecret::new("whsec_new_app")),
        ),
        (
            "service dialect duplicate URL: ask whether another resource claims it",
            Situation::new().service("whsec_app").facts(|f| {
                f.duplicate = Some(duplicate(Lookup::Found(unmarked_remote("sub-7"))));
            }),
            Decision::CheckClaim {
                id: "sub-7".into(),
                marker_uid: None,
            },
        ),
        (
            "service dialect duplicate URL nobody claims: take it over",
            Situation::new().service("whsec_app").facts(|f| {
                f.duplicate = Some(duplicate(Lookup::Found(unmarked_remote("sub-7"))));
                f.claims.push(("sub-7".into(), None));
            }),
            Decision::Adopt(unmarked_remote("sub-7")),
        ),
        (
            "service dialect rotation request: recorded as unsupported",
            Situation::new()
                .service("whsec_current")
                .annotate(ANNOTATION_ROTATE, "r1")
                .stored(stored_with("sub-1"))
                .facts(|f| f.remote = Remote::InStep),
            Decision::RotationUnsupported { value: "r1".into() },
        ),
    ];
    assert!(cases.len() >= 15);
    for (name, situation, expected) in cases {
        assert_eq!(situation.decide(), expected, "{name}");
    }
}

#[test]
fn stops_that_wait_for_the_user() {
    let cases: Vec<(&str, Situation, Reason, Retry)> = vec![
        (
            "resource being deleted: nothing is created for it",
            Situation::new().deleting(),
            Reason::Deleting,
            Retry::AwaitChange,
        ),
        (
            "adoption turned off",
            Situation::new()
                .adoption_off()
                .annotate(ANNOTATION_ADOPT, "sub-9"),
            Reason::AdoptionRefused,
            Retry::After(RESYNC),
        ),
        (
            "adoption target whose marker names a live resource",
            Situation::new()
                .annotate(ANNOTATION_ADOPT, "sub-9")
                .facts(|f| {
                    f.adoption = Lookup::Found(foreign_remote("sub-9"));
                    f.claims
                        .push(("sub-9".into(), Some("another WebhookSubscription".into())));
                }),
            Reason::AdoptionRefused,
            Retry::After(RESYNC),
        ),
        (
            "adoption target another resource records in its status",
            Situation::new()
                .annotate(ANNOTATION_ADOPT, "sub-9")
                .facts(|f| {
                    f.adoption = Lookup::Found(unmarked_remote("sub-9"));
                    f.claims.push((
                        "sub-9".into(),
                        Some("a WebhookSubscription in another namespace".into()),
                    ));
                }),
            Reason::AdoptionRefused,
            Retry::After(RESYNC),
        ),
        (
            "a Secret naming another resource's subscription (never recorded in our status)",
            Situation::new().stored(stored_with("sub-5")).facts(|f| {
                f.remote = Remote::Present(foreign_remote("sub-5"));
                f.claims
                    .push(("sub-5".into(), Some("another WebhookSubscription".into())));
            }),
            Reason::AdoptionRefused,
            Retry::After(RESYNC),
        ),
        (
            "service dialect duplicate URL with adoption turned off",
            Situation::new()
                .service("whsec_app")
                .adoption_off()
                .facts(|f| {
                    f.duplicate = Some(duplicate(Lookup::Found(unmarked_remote("sub-7"))));
                }),
            Reason::AdoptionRefused,
            Retry::After(RESYNC),
        ),
        (
            "adoption target missing at Ivy",
            Situation::new()
                .annotate(ANNOTATION_ADOPT, "sub-9")
                .facts(|f| f.adoption = Lookup::Absent),
            Reason::AdoptionFailed,
            Retry::AwaitChange,
        ),
        (
            "duplicate URL held by someone else's subscription",
            Situation::new().facts(|f| {
                f.duplicate = Some(duplicate(Lookup::Found(foreign_remote("sub-5"))));
            }),
            Reason::DuplicateUrl,
            Retry::After(RESYNC),
        ),
        (
            "duplicate URL but no holder to be found",
            Situation::new().facts(|f| f.duplicate = Some(duplicate(Lookup::Absent))),
            Reason::DuplicateUrl,
            Retry::After(RESYNC),
        ),
        (
            "service dialect duplicate URL another resource records in its status",
            Situation::new().service("whsec_app").facts(|f| {
                f.duplicate = Some(duplicate(Lookup::Found(unmarked_remote("sub-7"))));
                f.claims.push((
                    "sub-7".into(),
                    Some("a WebhookSubscription in another namespace".into()),
                ));
            }),
            Reason::AdoptionRefused,
            Retry::After(RESYNC),
        ),
    ];
    for (name, situation, reason, retry) in cases {
        let decision = situation.decide();
        assert_eq!(stop_reason(&decision), Some(reason), "{name}");
        let Decision::Stop { retry: got, .. } = decision else {
            unreachable!()
        };
        assert_eq!(got, retry, "{name}");
    }
}

#[test]
fn every_decision_changes_what_the_next_plan_sees() {
    // The driver's bound on decisions is a guard, not a crutch: following the planners with
    // the facts each action would record reaches Done in a few steps.
    let mut situation = Situation::new().annotate(ANNOTATION_ROTATE, "r1");
    let mut steps = Vec::new();
    loop {
        let decision = situation.decide();
        steps.push(format!("{decision:?}").chars().take(24).collect::<String>());
        match decision {
            Decision::Create(Purpose::Initial) => {
                situation.facts.stored = StoredSecret {
                    rotation: Some("r1".into()),
                    ..stored_with("sub-1")
                };
                situation.facts.created = true;
                situation.facts.remote = Remote::InStep;
            }
            Decision::Done => break,
            other => panic!("unexpected {other:?} after {steps:?}"),
        }
        assert!(steps.len() < 5, "{steps:?}");
    }
    assert_eq!(steps.len(), 2, "{steps:?}");
}

#[test]
fn scheduled_rotation_table() {
    let every_hour = |mut situation: Situation| {
        situation.sub.spec.rotation = Some(crate::crd::RotationSpec { every: "1h".into() });
        situation
    };
    let rotated = |secs: i64| StoredSecret {
        rotated_at: Some(ago(secs)),
        ..stored_with("sub-1")
    };
    let rotate = |value: &str| {
        Decision::Create(Purpose::Rotate {
            value: value.into(),
        })
    };
    let cases: Vec<(&str, Situation, Decision)> = vec![
        (
            "an hour after the last rotation: rotate",
            every_hour(Situation::new().stored(rotated(3_600)).verified()),
            rotate(""),
        ),
        (
            "never rotated, Secret created over an hour ago: rotate",
            every_hour(
                Situation::new()
                    .stored(StoredSecret {
                        secret_created_at: Some(ago(3_700)),
                        ..stored_with("sub-1")
                    })
                    .verified(),
            ),
            rotate(""),
        ),
        (
            "due with an answered annotation: the rotation answers it again, so it stays answered",
            every_hour(
                Situation::new()
                    .annotate(ANNOTATION_ROTATE, "r1")
                    .stored(StoredSecret {
                        rotation: Some("r1".into()),
                        ..rotated(4_000)
                    })
                    .verified(),
            ),
            rotate("r1"),
        ),
        (
            "due and a new annotation value: the request is what is answered",
            every_hour(
                Situation::new()
                    .annotate(ANNOTATION_ROTATE, "r2")
                    .stored(StoredSecret {
                        rotation: Some("r1".into()),
                        ..rotated(4_000)
                    })
                    .facts(|f| f.remote = Remote::InStep),
            ),
            rotate("r2"),
        ),
        (
            "not due yet: nothing to do",
            every_hour(Situation::new().stored(rotated(3_500)).verified()),
            Decision::Done,
        ),
        (
            "created in this reconcile: due a whole interval later",
            every_hour(
                Situation::new()
                    .stored(StoredSecret {
                        secret_created_at: Some(ago(86_400)),
                        ..stored_with("sub-1")
                    })
                    .facts(|f| {
                        f.created = true;
                        f.remote = Remote::InStep;
                    }),
            ),
            Decision::Done,
        ),
        (
            "due during another rotation's grace period: waits for it",
            every_hour(
                Situation::new()
                    .stored(StoredSecret {
                        previous_subscription_id: Some("sub-0".into()),
                        previous_signing_secret: Some(SigningSecret::new("whsec_old")),
                        secret_created_at: Some(ago(86_400)),
                        ..rotated(10)
                    })
                    .verified(),
            ),
            Decision::Done,
        ),
        (
            "due without a schedule: nothing to do",
            Situation::new().stored(rotated(86_400)).verified(),
            Decision::Done,
        ),
        (
            "due in the service dialect, whose secret is the app's: nothing to do",
            every_hour(
                Situation::new()
                    .service("whsec_current")
                    .stored(rotated(86_400))
                    .facts(|f| f.remote = Remote::InStep),
            ),
            Decision::Done,
        ),
        (
            "due while the resource is being deleted: nothing is created",
            every_hour(
                Situation::new()
                    .stored(rotated(86_400))
                    .verified()
                    .deleting(),
            ),
            Decision::Done,
        ),
    ];
    for (name, situation, expected) in cases {
        assert_eq!(situation.decide(), expected, "{name}");
    }
}

#[test]
fn a_scheduled_rotation_once_started_is_not_started_again() {
    let mut situation = Situation::new()
        .stored(StoredSecret {
            rotated_at: Some(ago(7_200)),
            ..stored_with("sub-1")
        })
        .verified();
    situation.sub.spec.rotation = Some(crate::crd::RotationSpec { every: "1h".into() });
    assert!(matches!(
        situation.decide(),
        Decision::Create(Purpose::Rotate { .. })
    ));
    // What the create records (see `create::create`).
    let stored = &mut situation.facts.stored;
    stored.previous_subscription_id = stored.subscription_id.replace("sub-2".into());
    stored.previous_signing_secret = stored
        .signing_secret
        .replace(SigningSecret::new("whsec_next"));
    stored.rotation = Some(String::new());
    stored.rotated_at = Some(now());
    situation.facts.created = true;
    situation.facts.remote = Remote::InStep;
    assert_eq!(situation.decide(), Decision::Done);
}
