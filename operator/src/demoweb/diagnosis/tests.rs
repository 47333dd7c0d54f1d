use super::*;
use crate::demoweb::desired::tests::seed;
use crate::demoweb::pods::{Terminated, Waiting};
use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// git-sync v4's last log line when a one-time sync fails, around git's stderr.
fn git_sync_log(stderr: &str) -> String {
    let error = format!(
        "Run(git fetch https://bob:hunter2@git.example.com/site.git main --verbose --no-progress --prune --no-auto-gc --depth 1): exit status 128: {{ stdout: \"\", stderr: {stderr:?} }}"
    );
    let line = serde_json::json!({
        "logger": "", "ts": "2026-12-07 10:00:00.000000", "caller": {"file": "main.go", "line": 925},
        "level": 0, "msg": "too many failures, aborting", "error": error, "failCount": 1,
    });
    format!("{{\"msg\":\"starting up\"}}\n{line}\n")
}

fn pod(name: &str, containers: Vec<ContainerSummary>) -> Arc<PodSummary> {
    Arc::new(PodSummary {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some(
                [
                    (
                        "app.kubernetes.io/instance".to_owned(),
                        "demoweb1".to_owned(),
                    ),
                    ("pod-template-hash".to_owned(), "abc".to_owned()),
                ]
                .into(),
            ),
            owner_references: Some(vec![OwnerReference {
                kind: "ReplicaSet".into(),
                name: "demoweb1-abc".into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        phase: Some("Pending".into()),
        containers,
        ..PodSummary::default()
    })
}

fn failed(name: &str, init: bool, message: &str) -> ContainerSummary {
    ContainerSummary {
        name: name.into(),
        init,
        waiting: Some(Waiting {
            reason: "CrashLoopBackOff".into(),
            message: "back-off 10s restarting failed container".into(),
        }),
        terminated: Some(Terminated {
            exit_code: 1,
            reason: "Error".into(),
            message: message.into(),
        }),
        ..ContainerSummary::default()
    }
}

fn deployment(conditions: Vec<(&str, &str, &str, &str)>) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("demoweb1".into()),
            ..ObjectMeta::default()
        },
        status: Some(DeploymentStatus {
            conditions: Some(
                conditions
                    .into_iter()
                    .map(|(t, s, r, m)| DeploymentCondition {
                        type_: t.into(),
                        status: s.into(),
                        reason: Some(r.into()),
                        message: Some(m.into()),
                        ..DeploymentCondition::default()
                    })
                    .collect(),
            ),
            ..DeploymentStatus::default()
        }),
        ..Deployment::default()
    }
}

#[test]
fn redaction_removes_user_info() {
    for (input, want) in [
        (
            "fatal: unable to access 'https://bob:hunter2@git.example.com/x.git/': 403",
            "fatal: unable to access 'https://REDACTED@git.example.com/x.git/': 403",
        ),
        (
            "https://ghp_token@github.com/a/b and http://u:p@h:8080",
            "https://REDACTED@github.com/a/b and http://REDACTED@h:8080",
        ),
        (
            "ssh://git@host/x git@github.com:a/b",
            "ssh://REDACTED@host/x git@github.com:a/b",
        ),
        ("no url here", "no url here"),
        ("https://example.com/a@b", "https://example.com/a@b"),
    ] {
        assert_eq!(redact(input), want);
    }
}

#[test]
fn git_sync_errors_are_read_from_the_log_tail() {
    let log = git_sync_log("warning: redirecting\nfatal: couldn't find remote ref nope");
    assert_eq!(git_sync_error(&log), "fatal: couldn't find remote ref nope");
    // A tail cut mid-line by the kubelet still ends with the error line.
    let cut = &log[20..];
    assert_eq!(git_sync_error(cut), "fatal: couldn't find remote ref nope");
    assert_eq!(
        git_sync_error("path \"docs\" is not a directory of the repository\n"),
        "path \"docs\" is not a directory of the repository"
    );
}

#[test]
fn one_reason_per_failure_class() {
    let mut dw = seed();
    dw.spec.gitrepo = "https://bob:hunter2@git.example.com/site.git".into();
    dw.spec.git_ref = Some("nope".into());
    dw.spec.path = Some("docs".into());
    let d = deployment(vec![]);
    let git = |stderr: &str| vec![failed(GIT_CLONE_CONTAINER, true, &git_sync_log(stderr))];
    struct Case {
        name: &'static str,
        pod: Arc<PodSummary>,
        deployment: Deployment,
        reason: &'static str,
        stalled: bool,
        says: &'static str,
    }
    let unschedulable = {
        let mut p = (*pod("demoweb1-abc-1", vec![])).clone();
        p.unschedulable = Some("0/3 nodes are available: 3 Insufficient cpu.".into());
        Arc::new(p)
    };
    let pulling = ContainerSummary {
        name: "web".into(),
        image: Some("nginx:nope".into()),
        waiting: Some(Waiting {
            reason: "ImagePullBackOff".into(),
            message: "Back-off pulling image \"nginx:nope\"".into(),
        }),
        ..ContainerSummary::default()
    };
    let cases = [
        Case {
            name: "unreachable",
            pod: pod(
                "demoweb1-abc-1",
                git(
                    "fatal: unable to access 'https://bob:hunter2@git.example.com/site.git/': Could not resolve host: git.example.com",
                ),
            ),
            deployment: d.clone(),
            reason: reason::GIT_UNREACHABLE,
            stalled: false,
            says: "Could not resolve host: git.example.com",
        },
        Case {
            name: "authentication",
            pod: pod(
                "demoweb1-abc-1",
                git(
                    "remote: Invalid username or password.\nfatal: Authentication failed for 'https://git.example.com/site.git/'",
                ),
            ),
            deployment: d.clone(),
            reason: reason::GIT_AUTHENTICATION_FAILED,
            stalled: true,
            says: "Authentication failed",
        },
        Case {
            name: "no such repository",
            pod: pod(
                "demoweb1-abc-1",
                git(
                    "remote: Repository not found.\nfatal: repository 'https://git.example.com/site.git/' not found",
                ),
            ),
            deployment: d.clone(),
            reason: reason::GIT_REPOSITORY_NOT_FOUND,
            stalled: true,
            says: "not found",
        },
        Case {
            name: "missing ref",
            pod: pod(
                "demoweb1-abc-1",
                git("fatal: couldn't find remote ref nope"),
            ),
            deployment: d.clone(),
            reason: reason::GIT_REF_NOT_FOUND,
            stalled: true,
            says: "ref \"nope\" not found",
        },
        Case {
            name: "missing path",
            pod: pod(
                "demoweb1-abc-1",
                vec![
                    ContainerSummary {
                        name: GIT_CLONE_CONTAINER.into(),
                        init: true,
                        ready: true,
                        terminated: Some(Terminated::default()),
                        ..ContainerSummary::default()
                    },
                    failed(
                        CHECK_PATH_CONTAINER,
                        true,
                        "path \"docs\" is not a directory",
                    ),
                ],
            ),
            deployment: d.clone(),
            reason: reason::GIT_PATH_NOT_FOUND,
            stalled: true,
            says: "path \"docs\" is not a directory",
        },
        Case {
            name: "image pull",
            pod: pod("demoweb1-abc-1", vec![pulling]),
            deployment: d.clone(),
            reason: reason::IMAGE_PULL_FAILED,
            stalled: true,
            says: "cannot pull image nginx:nope",
        },
        Case {
            name: "unschedulable",
            pod: unschedulable.clone(),
            deployment: d.clone(),
            reason: reason::UNSCHEDULABLE,
            stalled: false,
            says: "3 Insufficient cpu",
        },
        Case {
            name: "unschedulable past the deadline",
            pod: unschedulable,
            deployment: deployment(vec![(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                "ReplicaSet \"demoweb1-abc\" has timed out progressing.",
            )]),
            reason: reason::UNSCHEDULABLE,
            stalled: true,
            says: "3 Insufficient cpu",
        },
        Case {
            name: "crash loop",
            pod: pod("demoweb1-abc-1", vec![failed("web", false, "")]),
            deployment: d.clone(),
            reason: reason::CRASH_LOOP_BACK_OFF,
            stalled: true,
            says: "container web keeps crashing (last exit code 1, Error)",
        },
        Case {
            name: "deadline",
            pod: pod("demoweb1-abc-1", vec![]),
            deployment: deployment(vec![(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                "ReplicaSet \"demoweb1-abc\" has timed out progressing.",
            )]),
            reason: reason::PROGRESS_DEADLINE_EXCEEDED,
            stalled: true,
            says: "has timed out progressing",
        },
        Case {
            name: "replica failure",
            pod: pod("demoweb1-abc-1", vec![]),
            deployment: deployment(vec![
                ("Progressing", "True", "ReplicaSetUpdated", ""),
                (
                    "ReplicaFailure",
                    "True",
                    "FailedCreate",
                    "pods \"demoweb1-abc-x\" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=0, limited: pods=0",
                ),
            ]),
            reason: reason::REPLICA_FAILURE,
            stalled: true,
            says: "exceeded quota",
        },
    ];
    for case in cases {
        let got = diagnose(&dw, Some(&case.deployment), &[case.pod])
            .unwrap_or_else(|| panic!("{}: no diagnosis", case.name));
        assert_eq!(got.reason, case.reason, "{}: {}", case.name, got.message);
        assert_eq!(got.stalled, case.stalled, "{}", case.name);
        assert!(
            got.message.contains(case.says),
            "{}: {}",
            case.name,
            got.message
        );
        assert!(
            got.message.contains("demoweb1"),
            "{}: names the pod or Deployment: {}",
            case.name,
            got.message
        );
        assert!(
            !got.message.contains("hunter2") && !got.message.contains("bob"),
            "{}: credentials leak: {}",
            case.name,
            got.message
        );
    }
}

#[test]
fn healthy_and_foreign_pods_say_nothing() {
    let dw = seed();
    let d = deployment(vec![("Progressing", "True", "NewReplicaSetAvailable", "")]);
    let running = pod(
        "demoweb1-abc-1",
        vec![ContainerSummary {
            name: "web".into(),
            ready: true,
            ..ContainerSummary::default()
        }],
    );
    assert_eq!(diagnose(&dw, Some(&d), &[running]), None);
    let mut foreign = (*pod("demoweb1-abc-1", vec![failed("web", false, "")])).clone();
    foreign.metadata.owner_references.as_mut().unwrap()[0].name = "other-abc".into();
    assert_eq!(diagnose(&dw, Some(&d), &[Arc::new(foreign)]), None);
    assert_eq!(
        diagnose(&dw, None, &[]),
        None,
        "no Deployment, nothing to read"
    );
}
