//! Events: the one Event that tells what a reconcile changed, and a recorder that folds a
//! repeated Event into a series.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::TypeMeta;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client, Resource};
use serde::Serialize;

use super::hash_of;
use crate::metrics::Metrics;

/// One change a reconcile made, for the Event that sums them up.
pub(super) struct Change {
    pub(super) verb: &'static str,
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) related: Option<ObjectReference>,
}

/// The reason, note and related object of the Event that tells `changes`.
pub(super) fn summarize_changes(
    owner_kind: &str,
    mut changes: Vec<Change>,
) -> Option<(&'static str, String, Option<ObjectReference>)> {
    let first = changes.first()?.verb;
    let reason = if changes.iter().all(|c| c.verb == first) && first != "Updated" {
        first
    } else {
        "Updated"
    };
    let note = changes
        .iter()
        .map(|c| match c.verb {
            "Deleted" => format!(
                "deleted {} {}, which this {owner_kind} no longer needs",
                c.kind, c.name
            ),
            verb => format!("{} {} {}", verb.to_lowercase(), c.kind, c.name),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut note = note;
    if let Some(first) = note.get(..1) {
        note = first.to_uppercase() + &note[1..];
    }
    // One child: name it in `related`, so Events about different children stay apart.
    let related = if changes.len() == 1 {
        changes.pop().and_then(|c| c.related)
    } else {
        None
    };
    Some((reason, note, related))
}

/// A reference to a child for an Event's `related` field. Events about different children must
/// differ in it: the recorder folds Events with equal reason and references into one series.
pub(super) fn reference_to<K: Serialize + Resource>(obj: &K) -> Option<ObjectReference> {
    let typed = serde_json::to_value(obj).ok()?;
    let types = TypeMeta {
        api_version: typed["apiVersion"].as_str()?.to_owned(),
        kind: typed["kind"].as_str()?.to_owned(),
    };
    Some(reference(&types, obj.meta()))
}

/// The reference to the object `meta` describes, of the apiVersion and kind `types` names.
pub(super) fn reference(types: &TypeMeta, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(types.api_version.clone()),
        kind: Some(types.kind.clone()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Publishes an Event, logging (not failing) when the API refuses it.
pub async fn publish(
    recorder: &Recorder,
    reference: &ObjectReference,
    metrics: &Metrics,
    type_: EventType,
    reason: &str,
    note: String,
) {
    publish_related(recorder, reference, metrics, type_, reason, note, None).await;
}

pub(super) async fn publish_related(
    recorder: &Recorder,
    reference: &ObjectReference,
    metrics: &Metrics,
    type_: EventType,
    reason: &str,
    note: String,
    related: Option<ObjectReference>,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: related,
    };
    match recorder.publish(&event, reference).await {
        Ok(()) => metrics.count_write("event", "Event"),
        Err(err) if crate::error::is_namespace_terminating(&err) => {
            tracing::debug!(error = %err, reason, "no Event: the namespace is being deleted")
        }
        Err(err) => tracing::warn!(error = %err, reason, "could not record an Event"),
    }
}

/// How long a sent Event is remembered: the same Event again within this time (same type,
/// reason, action, object and related object) becomes one more count of its series rather than a
/// new Event, as kube-apiserver's own components do it.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// At most this many sent Events are remembered; beyond it the oldest is forgotten (its next
/// repetition starts a new Event instead of counting on the old one).
const SERIES_REMEMBERED: usize = 2048;

/// Writes `events.k8s.io/v1` Events. Like kube-runtime's recorder it folds a repeated Event into
/// a series; unlike it, it remembers only what a repetition needs (the Event's name and count,
/// not a copy of the Event) and at most [`SERIES_REMEMBERED`] of them, swept now and then rather
/// than on every write: an operator that creates ten thousand DemoWebs does not hold ten
/// thousand Events for six minutes.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    sent: std::sync::Arc<Mutex<SentEvents>>,
}

/// The Events sent within [`SERIES_WINDOW`], by a hash of what makes two Events the same.
#[derive(Default)]
struct SentEvents {
    by_key: HashMap<u64, Sent>,
    swept: Option<Instant>,
}

struct Sent {
    name: String,
    count: i32,
    last: Instant,
}

impl SentEvents {
    /// The name and next count of the series `key` continues, if it was sent within the window.
    fn repeat_of(&mut self, key: u64, now: Instant) -> Option<(String, i32)> {
        if self
            .swept
            .is_none_or(|swept| now.duration_since(swept) >= SERIES_WINDOW / 6)
        {
            self.by_key
                .retain(|_, sent| now.duration_since(sent.last) < SERIES_WINDOW);
            self.swept = Some(now);
        }
        self.by_key
            .get(&key)
            .filter(|sent| now.duration_since(sent.last) < SERIES_WINDOW)
            .map(|sent| (sent.name.clone(), sent.count + 1))
    }

    fn remember(&mut self, key: u64, name: String, count: i32, now: Instant) {
        if self.by_key.len() >= SERIES_REMEMBERED && !self.by_key.contains_key(&key) {
            let oldest = self
                .by_key
                .iter()
                .min_by_key(|(_, sent)| sent.last)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.by_key.remove(&oldest);
            }
        }
        self.by_key.insert(
            key,
            Sent {
                name,
                count,
                last: now,
            },
        );
    }
}

/// What makes two Events the same for a series (the note is not part of it, as in client-go).
fn series_key(event: &Event, regarding: &ObjectReference) -> u64 {
    let reference = |r: &ObjectReference| {
        (
            r.api_version.clone(),
            r.kind.clone(),
            r.namespace.clone(),
            r.name.clone(),
            r.uid.clone(),
        )
    };
    hash_of((
        matches!(event.type_, EventType::Warning),
        &event.action,
        &event.reason,
        reference(regarding),
        event.secondary.as_ref().map(reference),
    ))
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Recorder {
            client,
            reporter,
            sent: Default::default(),
        }
    }

    fn sent(&self) -> std::sync::MutexGuard<'_, SentEvents> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the Event, or counts one more of the same Event sent within the window. The
    /// callers decide what a refusal means: a DemoWeb's reconcile logs it, the identity
    /// controller retries.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = series_key(event, regarding);
        let now = jiff::Timestamp::now();
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let repeat = self.sent().repeat_of(key, Instant::now());
        let counted = match repeat {
            Some((name, count)) => {
                let patch = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: MicroTime(now) },
                });
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => Some((name, count)),
                    // The Event is gone (deleted, or expired early): this one starts a new series.
                    Err(kube::Error::Api(status)) if status.code == 404 => None,
                    Err(err) => return Err(err),
                }
            }
            None => None,
        };
        let (name, count) = match counted {
            Some(counted) => counted,
            None => {
                let created = api
                    .create(
                        &PostParams::default(),
                        &self.new_event(event, regarding, now),
                    )
                    .await?;
                (created.metadata.name.unwrap_or_default(), 1)
            }
        };
        self.sent().remember(key, name, count, Instant::now());
        Ok(())
    }

    fn new_event(
        &self,
        event: &Event,
        regarding: &ObjectReference,
        now: jiff::Timestamp,
    ) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_ref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..K8sEvent::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(verb: &'static str, kind: &str, name: &str) -> Change {
        Change {
            verb,
            kind: kind.into(),
            name: name.into(),
            related: Some(ObjectReference {
                kind: Some(kind.into()),
                name: Some(name.into()),
                ..ObjectReference::default()
            }),
        }
    }

    #[test]
    fn sent_events_fold_repeats_within_the_window_and_stay_bounded() {
        let mut sent = SentEvents::default();
        let start = Instant::now();
        assert_eq!(sent.repeat_of(1, start), None);
        sent.remember(1, "web.1".into(), 1, start);
        assert_eq!(sent.repeat_of(1, start), Some(("web.1".into(), 2)));
        sent.remember(1, "web.1".into(), 2, start);
        let later = start + SERIES_WINDOW / 2;
        assert_eq!(sent.repeat_of(1, later), Some(("web.1".into(), 3)));
        assert_eq!(sent.repeat_of(1, later + SERIES_WINDOW), None, "expired");
        assert!(sent.by_key.is_empty(), "swept");

        for key in 0..SERIES_REMEMBERED as u64 + 10 {
            sent.remember(
                key,
                format!("web.{key}"),
                1,
                start + Duration::from_millis(key),
            );
        }
        assert_eq!(sent.by_key.len(), SERIES_REMEMBERED);
        assert_eq!(
            sent.repeat_of(0, start),
            None,
            "the oldest is forgotten first"
        );
        let newest = SERIES_REMEMBERED as u64 + 9;
        assert!(sent.repeat_of(newest, start).is_some());
    }

    #[test]
    fn series_key_tells_events_apart_by_reason_object_and_related() {
        let web = |name: &str| ObjectReference {
            api_version: Some("baeke.info/v1".into()),
            kind: Some("DemoWeb".into()),
            namespace: Some("default".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        };
        let event = |reason: &str, note: &str, related: Option<ObjectReference>| Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: related,
        };
        let key = series_key(&event("Created", "a", None), &web("a"));
        assert_eq!(
            key,
            series_key(&event("Created", "other note", None), &web("a"))
        );
        assert_ne!(key, series_key(&event("Updated", "a", None), &web("a")));
        assert_ne!(key, series_key(&event("Created", "a", None), &web("b")));
        assert_ne!(
            key,
            series_key(&event("Created", "a", Some(web("c"))), &web("a"))
        );
    }

    #[test]
    fn one_event_tells_every_change() {
        assert!(
            summarize_changes("DemoWeb", vec![]).is_none(),
            "no change, no Event"
        );
        let (reason, note, related) = summarize_changes(
            "DemoWeb",
            vec![
                change("Created", "ConfigMap", "web-nginx"),
                change("Created", "Deployment", "web"),
                change("Created", "Service", "web"),
            ],
        )
        .expect("an Event");
        assert_eq!(reason, "Created");
        assert_eq!(
            note,
            "Created ConfigMap web-nginx; created Deployment web; created Service web"
        );
        assert_eq!(related, None, "several children: none is singled out");

        let (reason, note, related) =
            summarize_changes("DemoWeb", vec![change("Updated", "Deployment", "web")])
                .expect("an Event");
        assert_eq!(
            (reason, note.as_str()),
            ("Updated", "Updated Deployment web")
        );
        assert_eq!(
            related.and_then(|r| r.name),
            Some("web".to_owned()),
            "one child is named, so Events about different children are not folded together"
        );

        let (reason, note, _) = summarize_changes(
            "DemoWeb",
            vec![
                change("Created", "Ingress", "web"),
                change("Deleted", "Middleware", "web-allowlist"),
            ],
        )
        .expect("an Event");
        assert_eq!(reason, "Updated", "a mix of changes updated the site");
        assert_eq!(
            note,
            "Created Ingress web; deleted Middleware web-allowlist, which this DemoWeb no longer needs"
        );
        let (reason, _, _) =
            summarize_changes("DemoWeb", vec![change("Deleted", "Ingress", "web")])
                .expect("an Event");
        assert_eq!(reason, "Deleted");
    }
}
