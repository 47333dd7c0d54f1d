//! rbac.authorization.k8s.io/v1 roles and bindings as kubectl users see them: discovery, defaults,
//! validation messages and the immutable `roleRef`.

use serde_json::Value;

use demoweb_tests::harness::TestEnv;

async fn get_json(env: &TestEnv, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&env.kubectl(&all).await.expect_ok()).expect("kubectl prints JSON")
}

#[tokio::test]
async fn roles_and_bindings_are_served_like_kube_apiserver() {
    let env = TestEnv::new("rbac_kinds").await;
    let ns = env.namespace.clone();
    let out = env
        .kubectl(&["api-resources", "--api-group=rbac.authorization.k8s.io"])
        .await
        .expect_ok();
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            [
                "clusterrolebindings",
                "rbac.authorization.k8s.io/v1",
                "false",
                "ClusterRoleBinding"
            ],
            [
                "clusterroles",
                "rbac.authorization.k8s.io/v1",
                "false",
                "ClusterRole"
            ],
            [
                "rolebindings",
                "rbac.authorization.k8s.io/v1",
                "true",
                "RoleBinding"
            ],
            ["roles", "rbac.authorization.k8s.io/v1", "true", "Role"],
        ],
        "{out}"
    );

    // Cluster-scoped names carry the namespace: on a real cluster other runs' objects may exist.
    let cluster_name = format!("{ns}-reader");
    env.apply_yaml(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: lease-writer}}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
- apiGroups: ['']
  resources: [configmaps]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: lease-writer}}
roleRef: {{kind: Role, name: lease-writer}}
subjects:
- {{kind: ServiceAccount, name: op}}
- {{kind: User, name: alice}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {cluster_name}}}
rules:
- apiGroups: [networking.k8s.io]
  resources: [ingressclasses]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {cluster_name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {cluster_name}}}
subjects:
- {{kind: ServiceAccount, name: op, namespace: {ns}}}
"
    ))
    .await
    .expect_ok();

    let names = env
        .kubectl(&["get", "roles,rolebindings", "-o", "name"])
        .await
        .expect_ok();
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        [
            "role.rbac.authorization.k8s.io/lease-writer",
            "rolebinding.rbac.authorization.k8s.io/lease-writer"
        ]
    );
    let binding = get_json(&env, &["get", "rolebinding", "lease-writer"]).await;
    // The role reference's and the User's group are defaulted; a ServiceAccount's stays empty.
    assert_eq!(
        binding["roleRef"]["apiGroup"], "rbac.authorization.k8s.io",
        "{binding}"
    );
    assert_eq!(
        binding["subjects"][1]["apiGroup"], "rbac.authorization.k8s.io",
        "{binding}"
    );
    assert!(
        binding["subjects"][0].get("apiGroup").is_none(),
        "{binding}"
    );
    let cr = get_json(&env, &["get", "clusterrole", &cluster_name]).await;
    assert!(cr["metadata"].get("namespace").is_none(), "{cr}");
    assert_eq!(cr["rules"][0]["resources"][0], "ingressclasses");
    env.kubectl(&["get", "clusterrolebinding", &cluster_name])
        .await
        .expect_ok();

    // Rules are an atomic list: applying one rule leaves one rule.
    env.apply_yaml(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: lease-writer}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get]
",
    )
    .await
    .expect_ok();
    let role = get_json(&env, &["get", "role", "lease-writer"]).await;
    assert_eq!(role["rules"].as_array().map(Vec::len), Some(1), "{role}");
    assert_eq!(role["rules"][0]["verbs"], serde_json::json!(["get"]));

    env.kubectl(&["delete", "clusterrolebinding,clusterrole", &cluster_name])
        .await
        .expect_ok();
    env.finish().await;
}

#[tokio::test]
async fn a_bindings_role_ref_cannot_change() {
    let env = TestEnv::new("rbac_role_ref").await;
    let yaml = "apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: a}
subjects:
- {kind: ServiceAccount, name: op}
";
    env.apply_yaml(yaml).await.expect_ok();
    // Subjects may change.
    env.apply_yaml(&format!("{yaml}- {{kind: ServiceAccount, name: other}}\n"))
        .await
        .expect_ok();
    let changed = yaml.replace("kind: Role, name: a", "kind: ClusterRole, name: view");
    // Kubernetes 1.34 says "cannot change roleRef"; 1.37's declarative validation says "field is
    // immutable" (the emulator answers as 1.37).
    let refused = |stderr: &str| {
        ["field is immutable", "cannot change roleRef"].iter().any(|detail| {
            stderr.contains(&format!("roleRef: Invalid value: {{\"APIGroup\":\"rbac.authorization.k8s.io\",\"Kind\":\"ClusterRole\",\"Name\":\"view\"}}: {detail}"))
        })
    };
    let stderr = env.apply_yaml(&changed).await.expect_err();
    assert!(refused(&stderr), "{stderr}");
    let stderr = env
        .kubectl_with_stdin(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            Some(&changed),
        )
        .await
        .expect_err();
    assert!(refused(&stderr), "{stderr}");
    let binding = get_json(&env, &["get", "rolebinding", "b"]).await;
    assert_eq!(binding["roleRef"]["name"], "a");
    env.finish().await;
}

#[tokio::test]
async fn invalid_roles_and_bindings_are_refused_with_field_paths() {
    let env = TestEnv::new("rbac_validation").await;
    let cases = [
        (
            "kind: Role\nmetadata: {name: r}\nrules:\n- {apiGroups: [''], resources: [pods]}\n",
            "rules[0].verbs: Required value",
        ),
        (
            "kind: RoleBinding\nmetadata: {name: b}\nroleRef: {kind: Deployment, name: x}\n",
            "roleRef.kind: Unsupported value: \"Deployment\": supported values: \"Role\", \"ClusterRole\"",
        ),
        (
            "kind: ClusterRoleBinding\nmetadata: {name: rbac-validation-never-created}\nroleRef: {kind: ClusterRole, name: view}\nsubjects:\n- {kind: ServiceAccount, name: op}\n",
            "subjects[0].namespace: Required value",
        ),
    ];
    for (doc, want) in cases {
        let yaml = format!("apiVersion: rbac.authorization.k8s.io/v1\n{doc}");
        let stderr = env.apply_yaml(&yaml).await.expect_err();
        assert!(stderr.contains(want), "{doc}\n{stderr}");
    }
    env.finish().await;
}
