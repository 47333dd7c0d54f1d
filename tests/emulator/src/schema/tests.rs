//! Table-driven tests of the schema engine against the behaviour and messages of kube-apiserver.

use super::*;
use serde_json::{Value, json};

fn schema(spec_props: Value) -> StructuralSchema {
    let s = json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": spec_props},
        }
    });
    StructuralSchema::new(&s).unwrap_or_else(|e| panic!("schema rejected: {e:?}"))
}

fn messages(errors: &[FieldError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

fn validate_spec(s: &StructuralSchema, spec: Value) -> Vec<String> {
    messages(&s.validate(
        &json!({"apiVersion": "x/v1", "kind": "X", "spec": spec}),
        None,
    ))
}

#[test]
fn keyword_validation_messages() {
    let cases: Vec<(&str, Value, Value, Vec<&str>)> = vec![
        (
            "maximum",
            json!({"replicas": {"type": "integer", "minimum": 0, "maximum": 1000}}),
            json!({"replicas": 2000}),
            vec![
                "spec.replicas: Invalid value: 2000: spec.replicas in body should be less than or equal to 1000",
            ],
        ),
        (
            "minimum",
            json!({"replicas": {"type": "integer", "minimum": 0}}),
            json!({"replicas": -1}),
            vec![
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
            ],
        ),
        (
            "exclusive maximum",
            json!({"r": {"type": "number", "maximum": 1.5, "exclusiveMaximum": true}}),
            json!({"r": 1.5}),
            vec!["spec.r: Invalid value: 1.5: spec.r in body should be less than 1.5"],
        ),
        (
            "exclusive minimum",
            json!({"r": {"type": "integer", "minimum": 0, "exclusiveMinimum": true}}),
            json!({"r": 0}),
            vec!["spec.r: Invalid value: 0: spec.r in body should be greater than 0"],
        ),
        (
            "multipleOf",
            json!({"r": {"type": "integer", "multipleOf": 5}}),
            json!({"r": 7}),
            vec!["spec.r: Invalid value: 7: spec.r in body should be a multiple of 5"],
        ),
        (
            "integer given a string",
            json!({"replicas": {"type": "integer"}}),
            json!({"replicas": "3"}),
            vec![
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
            ],
        ),
        (
            "integer given a fraction",
            json!({"replicas": {"type": "integer"}}),
            json!({"replicas": 1.5}),
            vec![
                r#"spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number""#,
            ],
        ),
        (
            "integer given a whole float",
            json!({"replicas": {"type": "integer"}}),
            json!({"replicas": 2.0}),
            vec![],
        ),
        (
            "number accepts integers",
            json!({"ratio": {"type": "number"}}),
            json!({"ratio": 2}),
            vec![],
        ),
        (
            "string given an object",
            json!({"image": {"type": "string"}}),
            json!({"image": {"a": 1}}),
            vec![
                r#"spec.image: Invalid value: "object": spec.image in body must be of type string: "object""#,
            ],
        ),
        (
            "null in a non-nullable field",
            json!({"image": {"type": "string"}}),
            json!({"image": null}),
            vec![
                r#"spec.image: Invalid value: "null": spec.image in body must be of type string: "null""#,
            ],
        ),
        (
            "null in a nullable field",
            json!({"image": {"type": "string", "nullable": true}}),
            json!({"image": null}),
            vec![],
        ),
        (
            "boolean",
            json!({"on": {"type": "boolean"}}),
            json!({"on": "yes"}),
            vec![
                r#"spec.on: Invalid value: "string": spec.on in body must be of type boolean: "string""#,
            ],
        ),
        (
            "required",
            json!({"gitrepo": {"type": "string"}}),
            json!({}),
            vec![],
        ),
        (
            "enum",
            json!({"mode": {"type": "string", "enum": ["PodIdentity", "WorkloadIdentity"]}}),
            json!({"mode": "x"}),
            vec![
                r#"spec.mode: Unsupported value: "x": supported values: "PodIdentity", "WorkloadIdentity""#,
            ],
        ),
        (
            "enum of integers",
            json!({"type": {"type": "integer", "enum": [0, 1, 2]}}),
            json!({"type": 5}),
            vec![r#"spec.type: Unsupported value: 5: supported values: "0", "1", "2""#],
        ),
        (
            "minLength",
            json!({"name": {"type": "string", "minLength": 1}}),
            json!({"name": ""}),
            vec![
                r#"spec.name: Invalid value: "": spec.name in body should be at least 1 chars long"#,
            ],
        ),
        (
            "maxLength counts characters",
            json!({"name": {"type": "string", "maxLength": 3}}),
            json!({"name": "äöü"}),
            vec![],
        ),
        (
            "maxLength",
            json!({"name": {"type": "string", "maxLength": 3}}),
            json!({"name": "abcd"}),
            vec!["spec.name: Too long: may not be more than 3 bytes"],
        ),
        (
            "pattern",
            json!({"name": {"type": "string", "pattern": "^[a-z]+$"}}),
            json!({"name": "Abc"}),
            vec![r#"spec.name: Invalid value: "Abc": spec.name in body should match '^[a-z]+$'"#],
        ),
        (
            "pattern uses RE2 semantics (unanchored)",
            json!({"name": {"type": "string", "pattern": "[0-9]"}}),
            json!({"name": "abc1"}),
            vec![],
        ),
        (
            "minItems",
            json!({"l": {"type": "array", "items": {"type": "string"}, "minItems": 1}}),
            json!({"l": []}),
            vec!["spec.l: Invalid value: 0: spec.l in body should have at least 1 items"],
        ),
        (
            "maxItems",
            json!({"l": {"type": "array", "items": {"type": "string"}, "maxItems": 1}}),
            json!({"l": ["a", "b"]}),
            vec!["spec.l: Too many: 2: must have at most 1 item"],
        ),
        (
            "items are validated with their index",
            json!({"l": {"type": "array", "items": {"type": "string", "maxLength": 1}}}),
            json!({"l": ["a", "bb"]}),
            vec!["spec.l[1]: Too long: may not be more than 1 byte"],
        ),
        (
            "minProperties",
            json!({"m": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1}}),
            json!({"m": {}}),
            vec!["spec.m: Invalid value: 1: spec.m in body should have at least 1 properties"],
        ),
        (
            "maxProperties",
            json!({"m": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1}}),
            json!({"m": {"a": "1", "b": "2"}}),
            vec!["spec.m: Too many: 2: must have at most 1 item"],
        ),
        (
            "additionalProperties values",
            json!({"m": {"type": "object", "additionalProperties": {"type": "string"}}}),
            json!({"m": {"a": 1}}),
            vec![
                r#"spec.m.a: Invalid value: "integer": spec.m.a in body must be of type string: "integer""#,
            ],
        ),
        (
            "int-or-string accepts both",
            json!({"port": {"x-kubernetes-int-or-string": true}}),
            json!({"port": "http"}),
            vec![],
        ),
        (
            "int-or-string rejects others",
            json!({"port": {"x-kubernetes-int-or-string": true}}),
            json!({"port": true}),
            vec![
                r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
            ],
        ),
        (
            "list-type set",
            json!({"l": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}}),
            json!({"l": ["a", "b", "a"]}),
            vec![r#"spec.l[2]: Duplicate value: "a""#],
        ),
        (
            "list-type map",
            json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}}}),
            json!({"l": [{"type": "Ready", "status": "True"}, {"type": "Ready", "status": "False"}]}),
            vec![r#"spec.l[1]: Duplicate value: {"type":"Ready"}"#],
        ),
        (
            "allOf",
            json!({"n": {"type": "integer", "allOf": [{"minimum": 2}, {"maximum": 4}]}}),
            json!({"n": 5}),
            vec!["spec.n: Invalid value: 5: spec.n in body should be less than or equal to 4"],
        ),
        (
            "anyOf",
            json!({"n": {"type": "integer", "anyOf": [{"maximum": 1}, {"minimum": 10}]}}),
            json!({"n": 5}),
            vec![
                r#"<nil>: Invalid value: "": spec.n must validate at least one schema (anyOf)"#,
                "spec.n: Invalid value: 5: spec.n in body should be less than or equal to 1",
            ],
        ),
        (
            "oneOf",
            json!({"n": {"type": "integer", "oneOf": [{"minimum": 1}, {"minimum": 2}]}}),
            json!({"n": 5}),
            vec![
                r#"<nil>: Invalid value: "": spec.n must validate one and only one schema (oneOf). Found 2 valid alternatives"#,
            ],
        ),
        (
            "not",
            json!({"n": {"type": "integer", "not": {"minimum": 3}}}),
            json!({"n": 5}),
            vec![r#"<nil>: Invalid value: "": spec.n must not validate the schema (not)"#],
        ),
    ];
    for (name, props, spec, want) in cases {
        let s = schema(props);
        assert_eq!(validate_spec(&s, spec), want, "{name}");
    }
}

#[test]
fn required_fields_are_reported_by_path() {
    let s = StructuralSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "required": ["gitrepo"], "properties": {"gitrepo": {"type": "string"}}}},
        "required": ["spec"],
    }))
    .unwrap();
    assert_eq!(
        messages(&s.validate(&json!({"spec": {}}), None)),
        vec!["spec.gitrepo: Required value"]
    );
    assert_eq!(
        messages(&s.validate(&json!({}), None)),
        vec!["spec: Required value"]
    );
}

#[test]
fn formats() {
    // (format, value, valid)
    let cases = [
        ("cidr", "10.0.0.0/8", true),
        ("cidr", "10.0.0.1/32", true),
        ("cidr", "2001:db8::/32", true),
        ("cidr", "::/0", true),
        ("cidr", "10.0.0.0/33", false),
        ("cidr", "2001:db8::/129", false),
        ("cidr", "10.0.0.0", false),
        ("cidr", "not-a-cidr", false),
        ("ipv4", "192.168.1.1", true),
        ("ipv4", "192.168.1.256", false),
        ("ipv4", "::1", false),
        ("ipv6", "::1", true),
        ("ipv6", "fe80::1", true),
        ("ipv6", "1.2.3.4", false),
        ("uri", "https://example.com/x", true),
        ("uri", "/relative/path", true),
        ("uri", "example.com", false),
        ("hostname", "example.com", true),
        ("hostname", "-bad.example.com", false),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", true),
        ("uuid", "123e4567", false),
        ("date-time", "2024-01-02T03:04:05Z", true),
        ("date-time", "2024-01-02T03:04:05.123+02:00", true),
        ("date-time", "2024-02-30T03:04:05Z", false),
        ("date-time", "yesterday", false),
        ("date", "2024-02-29", true),
        ("date", "2023-02-29", false),
        ("byte", "aGVsbG8=", true),
        ("byte", "not base64!", false),
        ("duration", "60s", true),
        ("duration", "1h30m", true),
        ("duration", "3 days", true),
        ("duration", "soon", false),
        ("email", "a@example.com", true),
        ("email", "nope", false),
        ("mac", "00:1a:2b:3c:4d:5e", true),
        ("mac", "00:1a:2b", false),
        ("unknown-format", "anything", true),
        ("int-or-anything", "", true),
    ];
    for (fmt, v, ok) in cases {
        let s = schema(json!({"f": {"type": "string", "format": fmt}}));
        let errs = validate_spec(&s, json!({"f": v}));
        assert_eq!(errs.is_empty(), ok, "{fmt} {v:?}: {errs:?}");
        if !ok {
            assert_eq!(
                errs,
                vec![format!(
                    "spec.f: Invalid value: {v:?}: spec.f in body must be of type {fmt}: {v:?}"
                )]
            );
        }
    }
}

#[test]
fn pruning() {
    let s = StructuralSchema::new(&json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "known": {"type": "string"},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "partly": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"inner": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                    "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
                    "anyMap": {"type": "object", "additionalProperties": true},
                    "list": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "string"}}}},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                        "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}},
                }
            },
        }
    }))
    .unwrap();
    let mut obj = json!({
        "apiVersion": "baeke.info/v1",
        "kind": "DemoWeb",
        "metadata": {"name": "web", "namespace": "ns", "labels": {"a": "b"}, "bogus": 1},
        "spec": {
            "known": "k",
            "unknown": "drop me",
            "free": {"anything": {"goes": [1, 2]}},
            "partly": {"extra": true, "inner": {"a": "x", "b": "dropped"}},
            "labels": {"one": {"v": "1", "w": "dropped"}},
            "anyMap": {"x": {"y": 1}},
            "list": [{"n": "a", "m": "dropped"}],
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1},
                "spec": {"x": "kept", "y": "dropped"}, "status": "dropped"},
        },
        "status": {"whatever": 1},
    });
    assert_eq!(
        s.unknown_fields(&obj),
        vec![
            "metadata.bogus",
            "spec.labels.one.w",
            "spec.list[0].m",
            "spec.partly.inner.b",
            "spec.template.metadata.junk",
            "spec.template.spec.y",
            "spec.template.status",
            "spec.unknown",
            "status",
        ]
    );
    s.prune(&mut obj);
    assert!(s.unknown_fields(&obj).is_empty());
    assert_eq!(
        obj,
        json!({
            "apiVersion": "baeke.info/v1",
            "kind": "DemoWeb",
            "metadata": {"name": "web", "namespace": "ns", "labels": {"a": "b"}},
            "spec": {
                "known": "k",
                "free": {"anything": {"goes": [1, 2]}},
                "partly": {"extra": true, "inner": {"a": "x"}},
                "labels": {"one": {"v": "1"}},
                "anyMap": {"x": {"y": 1}},
                "list": [{"n": "a"}],
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": "kept"}},
            },
        })
    );
}

#[test]
fn defaulting() {
    let s = schema(json!({
        "replicas": {"type": "integer", "default": 1},
        "ingress": {"type": "object", "properties": {
            "host": {"type": "string"},
            "path": {"type": "string", "default": "/"},
            "tls": {"type": "object", "properties": {"enabled": {"type": "boolean", "default": false}}},
        }},
        "identity": {"type": "object", "default": {}, "properties": {
            "mode": {"type": "string", "default": "PodIdentity"},
        }},
        "ports": {"type": "array", "items": {"type": "object", "properties": {
            "protocol": {"type": "string", "default": "TCP"},
            "port": {"type": "integer"},
        }}},
        "env": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "value": {"type": "string", "default": "unset"},
        }}},
        "image": {"type": "string", "default": "nginx"},
        "note": {"type": "string"},
        "maybe": {"type": "string", "nullable": true, "default": "d"},
    }));
    // (description, spec before, spec after)
    let cases = [
        (
            "absent parents are not created, an object default cascades, nullable fields default too",
            json!({}),
            json!({"replicas": 1, "identity": {"mode": "PodIdentity"}, "image": "nginx", "maybe": "d"}),
        ),
        (
            "present parent gets its children's defaults, nested only where present",
            json!({"ingress": {"host": "a.example"}}),
            json!({"replicas": 1, "identity": {"mode": "PodIdentity"}, "image": "nginx", "maybe": "d",
                   "ingress": {"host": "a.example", "path": "/"}}),
        ),
        (
            "values given are kept",
            json!({"replicas": 3, "ingress": {"path": "/x", "tls": {}}, "identity": {"mode": "WorkloadIdentity"}}),
            json!({"replicas": 3, "ingress": {"path": "/x", "tls": {"enabled": false}},
                   "identity": {"mode": "WorkloadIdentity"}, "image": "nginx", "maybe": "d"}),
        ),
        (
            "array items and map values are defaulted",
            json!({"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}], "env": {"A": {}}}),
            json!({"replicas": 1, "identity": {"mode": "PodIdentity"}, "image": "nginx", "maybe": "d",
                   "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                   "env": {"A": {"value": "unset"}}}),
        ),
        (
            "null: non-nullable with default gets it, without default is dropped, nullable stays",
            json!({"image": null, "note": null, "maybe": null}),
            json!({"replicas": 1, "identity": {"mode": "PodIdentity"}, "image": "nginx", "maybe": null}),
        ),
    ];
    for (name, spec, want) in cases {
        let mut obj = json!({"spec": spec});
        s.apply_defaults(&mut obj);
        assert_eq!(obj["spec"], want, "{name}");
    }
}

fn cel_schema(rules_at_spec: Value, spec_props: Value) -> StructuralSchema {
    StructuralSchema::new(&json!({
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": spec_props, "x-kubernetes-validations": rules_at_spec},
        }
    }))
    .unwrap_or_else(|e| panic!("schema rejected: {:?}", messages(&e)))
}

#[test]
fn cel_rules() {
    let props = json!({
        "replicas": {"type": "integer"},
        "gitrepo": {"type": "string", "maxLength": 2048},
        "ratio": {"type": "number"},
        "ingress": {"type": "object", "properties": {
            "host": {"type": "string"},
            "allowedSourceRanges": {"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 43}},
        }},
        "tags": {"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 63}},
        "labels": {"type": "object", "maxProperties": 16, "additionalProperties": {"type": "string", "maxLength": 63}},
        "x-name": {"type": "string"},
    });
    // (rule object, spec, expected messages)
    let cases: Vec<(Value, Value, Vec<&str>)> = vec![
        (
            json!({"rule": "self.replicas <= 10", "message": "too many replicas"}),
            json!({"replicas": 11}),
            vec!["spec: Invalid value: too many replicas"],
        ),
        (
            json!({"rule": "self.replicas <= 10"}),
            json!({"replicas": 11}),
            vec!["spec: Invalid value: failed rule: self.replicas <= 10"],
        ),
        (
            json!({"rule": "self.replicas <= 10"}),
            json!({"replicas": 3}),
            vec![],
        ),
        (
            json!({"rule": "self.gitrepo.startsWith('https://') || self.gitrepo.startsWith('git@')",
                   "message": "gitrepo must be https or ssh", "fieldPath": ".gitrepo"}),
            json!({"gitrepo": "file:///etc"}),
            vec!["spec.gitrepo: Invalid value: gitrepo must be https or ssh"],
        ),
        (
            json!({"rule": "!has(self.ingress) || has(self.ingress.host)", "message": "ingress.host is required",
                   "reason": "FieldValueRequired", "fieldPath": ".ingress.host"}),
            json!({"ingress": {}}),
            vec!["spec.ingress.host: Required value: ingress.host is required"],
        ),
        (
            json!({"rule": "!has(self.ingress) || has(self.ingress.host)"}),
            json!({}),
            vec![],
        ),
        (
            json!({"rule": "self.replicas < 5", "reason": "FieldValueForbidden", "message": "no"}),
            json!({"replicas": 6}),
            vec!["spec: Forbidden: no"],
        ),
        (
            json!({"rule": "self.replicas < 5", "messageExpression": "'replicas ' + string(self.replicas) + ' exceeds 4'"}),
            json!({"replicas": 6}),
            vec!["spec: Invalid value: replicas 6 exceeds 4"],
        ),
        (
            json!({"rule": "self.ingress.allowedSourceRanges.all(r, isCIDR(r))", "message": "must be CIDRs"}),
            json!({"ingress": {"allowedSourceRanges": ["10.0.0.0/8", "2001:db8::/32"]}}),
            vec![],
        ),
        (
            json!({"rule": "self.ingress.allowedSourceRanges.all(r, isCIDR(r))", "message": "must be CIDRs"}),
            json!({"ingress": {"allowedSourceRanges": ["10.0.0.0/8", "nope"]}}),
            vec!["spec: Invalid value: must be CIDRs"],
        ),
        (
            json!({"rule": "self.ingress.allowedSourceRanges.all(r, cidr(r).prefixLength() >= 8)"}),
            json!({"ingress": {"allowedSourceRanges": ["10.0.0.0/8", "0.0.0.0/0"]}}),
            vec![
                "spec: Invalid value: failed rule: self.ingress.allowedSourceRanges.all(r, cidr(r).prefixLength() >= 8)",
            ],
        ),
        (
            json!({"rule": "cidr('10.1.2.3/8').ip() == ip('10.1.2.3') && cidr('10.1.2.3/8').masked() == cidr('10.0.0.0/8') && cidr('10.0.0.0/8').containsIP('10.9.9.9') && !cidr('10.0.0.0/8').containsIP(ip('11.0.0.1')) && cidr('::/0').containsCIDR('2001:db8::/32')"}),
            json!({}),
            vec![],
        ),
        (
            json!({"rule": "isIP('::1') && ip('::1').family() == 6 && ip('127.0.0.1').isLoopback() && !isIP('::ffff:1.2.3.4') && !isIP('1.2.3') && string(ip('10.0.0.1')) == '10.0.0.1'"}),
            json!({}),
            vec![],
        ),
        (
            json!({"rule": "isURL(self.gitrepo) && url(self.gitrepo).getScheme() == 'https' && url(self.gitrepo).getHostname() == 'github.com' && url(self.gitrepo).getHost() == 'github.com:443' && url(self.gitrepo).getPort() == '443' && url(self.gitrepo).getEscapedPath() == '/a/b'"}),
            json!({"gitrepo": "https://github.com:443/a/b"}),
            vec![],
        ),
        (
            json!({"rule": "self.gitrepo.lowerAscii() == 'abc' && self.gitrepo.upperAscii() == 'ABC' && 'a,b'.split(',') == ['a', 'b'] && ['a', 'b'].join('-') == 'a-b' && '  x '.trim() == 'x' && 'aXa'.replace('X', 'y') == 'aya' && 'hello'.indexOf('l') == 2 && 'abc'.matches('^a') && 'abc'.endsWith('c') && 'abc'.contains('b') && size('abc') == 3"}),
            json!({"gitrepo": "aBc"}),
            vec![],
        ),
        (
            json!({"rule": "self.tags.exists(t, t == 'a') && self.tags.exists_one(t, t == 'b') && self.tags.map(t, t + '!') == ['a!', 'b!'] && self.tags.filter(t, t != 'a') == ['b'] && self.tags.isSorted() && self.tags.indexOf('b') == 1 && [1, 2, 3].sum() == 6 && [3, 1].min() == 1 && [3, 1].max() == 3"}),
            json!({"tags": ["a", "b"]}),
            vec![],
        ),
        (
            json!({"rule": "self.labels.all(k, k.startsWith('app') && self.labels[k] != '')", "message": "bad labels"}),
            json!({"labels": {"app": "x", "other": "y"}}),
            vec!["spec: Invalid value: bad labels"],
        ),
        (
            json!({"rule": "self.ratio > 0.5"}),
            json!({"ratio": 1}),
            vec![],
        ),
        (
            json!({"rule": "self.x__dash__name == 'ok'"}),
            json!({"x-name": "ok"}),
            vec![],
        ),
        (
            json!({"rule": "'abc123'.find('[0-9]+') == '123' && 'a1b2'.findAll('[0-9]') == ['1', '2'] && sets.contains([1, 2, 3], [1]) && sets.intersects([1], [1, 2])"}),
            json!({}),
            vec![],
        ),
        (
            json!({"rule": "quantity('500m').isLessThan(quantity('1')) && quantity('1Gi').compareTo(quantity('1024Mi')) == 0 && quantity('1.5k').asInteger() == 1500 && quantity('2').add(3).asInteger() == 5 && quantity('1').sub(quantity('250m')).asApproximateFloat() == 0.75 && isQuantity('10Mi') && !isQuantity('10 Mi') && !quantity('1m').isInteger() && quantity('1e3').isGreaterThan(quantity('999')) && quantity('-1').sign() == -1"}),
            json!({}),
            vec![],
        ),
        (
            json!({"rule": "self.replicas > 1"}),
            json!({}),
            vec![
                r#"spec: Invalid value: "object": no such key: replicas evaluating rule: self.replicas > 1"#,
            ],
        ),
    ];
    for (rule, spec, want) in cases {
        let s = cel_schema(json!([rule.clone()]), props.clone());
        assert_eq!(validate_spec(&s, spec), want, "{rule}");
    }
}

#[test]
fn cel_rules_on_scalars_and_list_items() {
    let s = StructuralSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "gitrepo": {"type": "string", "maxLength": 2048, "x-kubernetes-validations": [
                {"rule": "!self.startsWith('-')", "message": "gitrepo must not start with '-'"},
                {"rule": "self.startsWith('https://') || self.startsWith('http://') || self.startsWith('ssh://') || self.startsWith('git@')",
                 "message": "gitrepo must be an https://, http://, ssh:// or git@host:path URL"},
            ]},
            "ranges": {"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 43, "x-kubernetes-validations": [
                {"rule": "isCIDR(self)", "message": "must be a CIDR"},
            ]}},
        }}}
    }))
    .unwrap();
    assert_eq!(
        validate_spec(
            &s,
            json!({"gitrepo": "-x", "ranges": ["10.0.0.0/8", "1.2.3.4"]})
        ),
        vec![
            r#"spec.gitrepo: Invalid value: "-x": gitrepo must not start with '-'"#,
            r#"spec.gitrepo: Invalid value: "-x": gitrepo must be an https://, http://, ssh:// or git@host:path URL"#,
            r#"spec.ranges[1]: Invalid value: "1.2.3.4": must be a CIDR"#,
        ]
    );
}

#[test]
fn cel_root_rules_see_metadata_name_only() {
    let s = StructuralSchema::new(&json!({
        "type": "object",
        "x-kubernetes-validations": [
            {"rule": "self.metadata.name.size() <= 10", "message": "name too long"},
            {"rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')", "message": "name must be a DNS-1035 label"},
            {"rule": "self.kind == 'DemoWeb'"},
        ],
        "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}},
    }))
    .unwrap();
    let obj = |name: &str| json!({"apiVersion": "baeke.info/v1", "kind": "DemoWeb", "metadata": {"name": name, "namespace": "default"}, "spec": {}});
    assert!(s.validate(&obj("web"), None).is_empty());
    assert_eq!(
        messages(&s.validate(&obj("9-very-long-name"), None)),
        vec![
            "<nil>: Invalid value: name too long",
            "<nil>: Invalid value: name must be a DNS-1035 label",
        ]
    );
    // Other metadata is not visible to rules, even when the schema does not declare metadata.
    let no_metadata_property = StructuralSchema::new(&json!({
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.metadata.labels.size() > 0"}],
    }))
    .unwrap_err();
    assert!(
        no_metadata_property[0]
            .detail
            .contains("undefined field 'labels'")
    );
    // The CRD is refused.
    let refused = StructuralSchema::new(&json!({
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.metadata.namespace == 'x'"}],
        "properties": {"metadata": {"type": "object"}},
    }))
    .unwrap_err();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].to_string().starts_with(
            "spec.validation.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: "
        ),
        "{}",
        refused[0]
    );
    assert!(
        refused[0].detail.contains("undefined field 'namespace'"),
        "{}",
        refused[0].detail
    );
}

#[test]
fn cel_transition_rules() {
    let s = StructuralSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "mode": {"type": "string", "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "mode is immutable"},
            ]},
            "size": {"type": "integer", "x-kubernetes-validations": [
                {"rule": "!oldSelf.hasValue() || self >= oldSelf.value()", "message": "size may not shrink", "optionalOldSelf": true},
            ]},
            "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}, "since": {"type": "integer"}},
                    "x-kubernetes-validations": [{"rule": "self.since >= oldSelf.since", "message": "since goes forward"}]}},
        }}}
    }))
    .unwrap();
    let obj = |mode: &str, size: i64, since: i64| json!({"spec": {"mode": mode, "size": size, "conditions": [{"type": "Ready", "since": since}]}});
    // On create there is no old object: transition rules are skipped (optionalOldSelf ones run).
    assert!(s.validate(&obj("a", 1, 5), None).is_empty());
    assert!(
        s.validate(&obj("a", 2, 6), Some(&obj("a", 1, 5)))
            .is_empty()
    );
    assert_eq!(
        messages(&s.validate(&obj("b", 0, 4), Some(&obj("a", 1, 5)))),
        vec![
            "spec.conditions[0]: Invalid value: since goes forward",
            r#"spec.mode: Invalid value: "b": mode is immutable"#,
            "spec.size: Invalid value: 0: size may not shrink",
        ]
    );
    // A field that did not exist before has no old value: its transition rule is skipped.
    let old = json!({"spec": {"size": 1}});
    assert!(s.validate(&obj("b", 1, 1), Some(&old)).is_empty());
}

#[test]
fn cel_compile_errors_reject_the_crd() {
    let props = json!({"replicas": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string",
        "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}},
        "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "untyped": {"x-kubernetes-preserve-unknown-fields": true}});
    let err = |rule: Value| -> Vec<FieldError> {
        StructuralSchema::new(&json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": props.clone(), "x-kubernetes-validations": [rule]}}
        }))
        .unwrap_err()
    };
    // (rule, field, substring of the detail)
    let cases = [
        (
            json!({"rule": "self.replicas.frobnicate()"}),
            "rule",
            "undeclared reference to 'frobnicate' (in container '')",
        ),
        (
            json!({"rule": "nosuchfn(self.replicas)"}),
            "rule",
            "undeclared reference to 'nosuchfn'",
        ),
        (
            json!({"rule": "self.replicas > other"}),
            "rule",
            "undeclared reference to 'other'",
        ),
        (
            json!({"rule": "self.replcas > 1"}),
            "rule",
            "undefined field 'replcas'",
        ),
        (
            json!({"rule": "self.replicas >"}),
            "rule",
            "compilation failed: ERROR: <input>:1:",
        ),
        (json!({"rule": ""}), "rule", ""),
        (
            json!({"rule": "self.replicas > '3'"}),
            "rule",
            "found no matching overload for '_>_' applied to '(int, string)'",
        ),
        (
            json!({"rule": "'n=' + self.replicas == 'n=1'"}),
            "rule",
            "found no matching overload for '_+_' applied to '(string, int)'",
        ),
        (
            json!({"rule": "self.replicas.startsWith('1')"}),
            "rule",
            "found no matching overload for 'startsWith' applied to 'int.(string)'",
        ),
        (
            json!({"rule": "self.tags.all(t, t.size() > 0 && t.nope == 1)"}),
            "rule",
            "type 'string' does not support field selection",
        ),
        (
            json!({"rule": "self.items.all(i, i.nmae == 'x')"}),
            "rule",
            "undefined field 'nmae'",
        ),
        (
            json!({"rule": "self.replicas + 1"}),
            "rule",
            "cel expression must evaluate to a bool",
        ),
        (
            json!({"rule": "true", "messageExpression": "self.replicas"}),
            "messageExpression",
            "messageExpression must evaluate to a string",
        ),
        (
            json!({"rule": "has(self.replicaz)"}),
            "rule",
            "undefined field 'replicaz'",
        ),
        (
            json!({"rule": "true", "reason": "Bogus"}),
            "reason",
            "supported values",
        ),
        (
            json!({"rule": "true", "messageExpression": "nope()"}),
            "messageExpression",
            "messageExpression compilation failed",
        ),
        (
            json!({"rule": "true", "fieldPath": ".nothere"}),
            "fieldPath",
            "fieldPath must be a valid path",
        ),
        (
            json!({"rule": "true", "optionalOldSelf": true}),
            "optionalOldSelf",
            "may not be set if oldSelf is not used in rule",
        ),
    ];
    for (rule, field, detail) in cases {
        let errs = err(rule.clone());
        let own: Vec<&FieldError> = errs
            .iter()
            .filter(|e| {
                e.field.starts_with(
                    "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]",
                )
            })
            .collect();
        assert_eq!(own.len(), 1, "{rule}: {:?}", messages(&errs));
        assert_eq!(
            own[0].field,
            format!(
                "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].{field}"
            ),
            "{rule}"
        );
        assert!(own[0].detail.contains(detail), "{rule}: {}", own[0]);
    }
    // oldSelf inside the items of an atomic list cannot be correlated.
    let errs = err(json!({"rule": "true"}));
    assert_eq!(
        errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
        vec![
            "spec.validation.openAPIV3Schema.properties[spec].properties[tags].items.x-kubernetes-validations[0].rule"
        ]
    );
    assert!(
        errs[0]
            .detail
            .contains("oldSelf cannot be used on the uncorrelatable portion of the schema")
    );
}

#[test]
fn cel_compile_error_text() {
    let errs = StructuralSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.foo()"}]}}
    }))
    .unwrap_err();
    assert_eq!(
        messages(&errs),
        vec![
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.foo()\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:9: undeclared reference to 'foo' (in container '')\n | self.foo()\n | ........^"
        ]
    );
}

#[test]
fn structural_schema_problems() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"type": "object", "properties": {"spec": {"properties": {}}}}),
            vec![
                "spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
            ],
        ),
        (
            json!({"type": "string"}),
            vec![
                r#"spec.validation.openAPIV3Schema.type: Invalid value: "string": must be object at the root"#,
            ],
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array"}}}),
            vec![
                "spec.validation.openAPIV3Schema.properties[l].items: Required value: must be specified",
            ],
        ),
        (
            json!({"type": "object", "properties": {"m": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}}}),
            vec![
                "spec.validation.openAPIV3Schema.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
            ],
        ),
        (
            json!({"type": "object", "properties": {"r": {"$ref": "#/definitions/x"}}}),
            vec![
                "spec.validation.openAPIV3Schema.properties[r].$ref: Forbidden: $ref is not supported",
                "spec.validation.openAPIV3Schema.properties[r].type: Required value: must not be empty for specified object fields",
            ],
        ),
        (
            json!({"type": "object", "properties": {"p": {"type": "string", "pattern": "("}}}),
            vec![],
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "map"}}}),
            vec![
                "spec.validation.openAPIV3Schema.properties[l].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map",
                r#"spec.validation.openAPIV3Schema.properties[l].items.type: Invalid value: "string": must be object if parent array's x-kubernetes-list-type is map"#,
            ],
        ),
        (
            json!({"type": "object", "properties": {
                "l": {"type": "object", "x-kubernetes-list-type": "atomic"},
                "m": {"type": "string", "x-kubernetes-map-type": "atomic"},
                "e": {"x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true}}}),
            vec![
                "spec.validation.openAPIV3Schema.properties[e].type: Required value: must be object if x-kubernetes-embedded-resource is true",
                r#"spec.validation.openAPIV3Schema.properties[l].type: Invalid value: "object": must be array if x-kubernetes-list-type is specified"#,
                r#"spec.validation.openAPIV3Schema.properties[m].type: Invalid value: "string": must be object if x-kubernetes-map-type is specified"#,
            ],
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}}}),
            vec![
                "spec.validation.openAPIV3Schema.properties[l].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            ],
        ),
        (
            json!({"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": true}, "free": {"x-kubernetes-preserve-unknown-fields": true}}}),
            vec![],
        ),
        (
            json!({"type": "object", "properties": {"free": {"type": "object", "x-kubernetes-preserve-unknown-fields": false}}}),
            vec![
                "spec.validation.openAPIV3Schema.properties[free].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined",
            ],
        ),
        (
            json!({"type": "object", "nullable": true}),
            vec![
                "spec.validation.openAPIV3Schema.nullable: Forbidden: nullable cannot be true at the root",
            ],
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"id": {"type": "string"}}}}}}),
            vec![
                r#"spec.validation.openAPIV3Schema.properties[l].x-kubernetes-list-map-keys: Invalid value: ["name"]: entries must all be names of item properties"#,
            ],
        ),
        (
            json!({"type": "object", "properties": {"l": {"type": "array", "x-kubernetes-list-type": "set",
                "items": {"type": "string", "nullable": true}}}}),
            vec![
                "spec.validation.openAPIV3Schema.properties[l].items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is set",
            ],
        ),
    ];
    for (s, want) in cases {
        let got = match StructuralSchema::new(&s) {
            Ok(_) => vec![],
            Err(e) => messages(&e),
        };
        if s.pointer("/properties/p/pattern").is_some() {
            assert_eq!(got.len(), 1, "{got:?}");
            assert!(got[0].starts_with(r#"spec.validation.openAPIV3Schema.properties[p].pattern: Invalid value: "(": must be a valid regular expression, but isn't: "#));
            continue;
        }
        assert_eq!(got, want, "{s}");
    }
}

#[test]
fn status_message_and_causes() {
    let one = vec![FieldError::invalid(
        "spec.replicas",
        json!(2000),
        "spec.replicas in body should be less than or equal to 1000",
    )];
    assert_eq!(
        status_message("DemoWeb.baeke.info", "web", &one),
        "DemoWeb.baeke.info \"web\" is invalid: spec.replicas: Invalid value: 2000: spec.replicas in body should be less than or equal to 1000"
    );
    let two = vec![
        one[0].clone(),
        FieldError::required("spec.gitrepo", ""),
        one[0].clone(),
    ];
    assert_eq!(
        status_message("DemoWeb.baeke.info", "web", &two),
        "DemoWeb.baeke.info \"web\" is invalid: [spec.replicas: Invalid value: 2000: spec.replicas in body should be less than or equal to 1000, spec.gitrepo: Required value]"
    );
    assert_eq!(
        status_causes(&two[..2]),
        vec![
            json!({"reason": "FieldValueInvalid", "message": "Invalid value: 2000: spec.replicas in body should be less than or equal to 1000", "field": "spec.replicas"}),
            json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.gitrepo"}),
        ]
    );
    assert_eq!(
        FieldError::not_supported("spec.type", json!("x"), &["a".into(), "b".into()]).to_string(),
        r#"spec.type: Unsupported value: "x": supported values: "a", "b""#
    );
    assert_eq!(
        FieldError::too_many("spec.l", Some(3), Some(2)).to_string(),
        "spec.l: Too many: 3: must have at most 2 items"
    );
    assert_eq!(
        FieldError::invalid("a", json!("tab\there \"q\""), "d").to_string(),
        r#"a: Invalid value: "tab\there \"q\"": d"#
    );
}

/// The project's DemoWeb CRD as generated from its Rust types (read at run time, so the emulator
/// does not depend on the project's crates).
fn demoweb_crd() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../charts/demoweb-operator/crds/demowebs.baeke.info.yaml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::from_str(&text).expect("the DemoWeb CRD parses")
}

#[test]
fn realistic_crd_end_to_end() {
    let crd = demoweb_crd();
    assert_eq!(messages(&validate_crd(&crd)), Vec::<String>::new());
    let s =
        StructuralSchema::new(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]).unwrap();

    let mut good = json!({
        "apiVersion": "baeke.info/v1", "kind": "DemoWeb",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"a": "b"}},
        "spec": {"gitrepo": "https://github.com/gbaeke/static-web", "ingress": {"host": "web.example.com",
            "allowedSourceRanges": ["10.0.0.0/8", "2001:db8::/48"]}, "unknownField": true},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z",
            "reason": "Ready", "message": "serving"}]},
    });
    s.prune(&mut good);
    s.apply_defaults(&mut good);
    assert_eq!(
        good["spec"],
        json!({"gitrepo": "https://github.com/gbaeke/static-web", "replicas": 1,
               "ingress": {"host": "web.example.com", "path": "/", "allowedSourceRanges": ["10.0.0.0/8", "2001:db8::/48"]}})
    );
    assert_eq!(messages(&s.validate(&good, None)), Vec::<String>::new());

    // Schema violations: CEL rules are not run, and the server says so.
    let mut bad = json!({
        "apiVersion": "baeke.info/v1", "kind": "DemoWeb",
        "metadata": {"name": "Web"},
        "spec": {"replicas": 2000, "ingress": {"allowedSourceRanges": ["10.0.0.0/33"], "path": 7},
            "identity": {"binding": "web", "mode": "Magic"}},
    });
    s.prune(&mut bad);
    s.apply_defaults(&mut bad);
    let errs = s.validate(&bad, None);
    assert_eq!(
        messages(&errs),
        vec![
            "spec.gitrepo: Required value",
            r#"spec.identity.mode: Unsupported value: "Magic": supported values: "PodIdentity", "WorkloadIdentity""#,
            r#"spec.ingress.path: Invalid value: "integer": spec.ingress.path in body must be of type string: "integer""#,
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ]
    );
    assert!(status_message("DemoWeb.baeke.info", "Web", &errs).starts_with(
        "DemoWeb.baeke.info \"Web\" is invalid: [spec.gitrepo: Required value, spec.identity.mode: Unsupported value: \"Magic\": "
    ));

    // A missing ingress host and a bare address are CEL rules, not `required` and `format`: each
    // gets one line of its own, and nothing is left unchecked.
    let mut bare = json!({
        "apiVersion": "baeke.info/v1", "kind": "DemoWeb",
        "metadata": {"name": "web"},
        "spec": {"gitrepo": "https://github.com/gbaeke/static-web", "ingress": {
            "allowedSourceRanges": ["203.0.113.7", "2001:db8::1", "10.0.0.0/33", "10.0.0.0/8"]}},
    });
    s.prune(&mut bare);
    s.apply_defaults(&mut bare);
    assert_eq!(
        messages(&s.validate(&bare, None)),
        vec![
            r#"spec.ingress: Invalid value: ingress.host is required: the host name the site answers to, such as www.example.com"#,
            r#"spec.ingress.allowedSourceRanges[0]: Invalid value: "203.0.113.7": "203.0.113.7" is a single address, not a range: write "203.0.113.7/32" to allow just it"#,
            r#"spec.ingress.allowedSourceRanges[1]: Invalid value: "2001:db8::1": "2001:db8::1" is a single address, not a range: write "2001:db8::1/128" to allow just it"#,
            r#"spec.ingress.allowedSourceRanges[2]: Invalid value: "10.0.0.0/33": "10.0.0.0/33" is not a CIDR range such as 203.0.113.7/32 or 2001:db8::/48"#,
        ]
    );

    // Only a bound violated (not blocking): the CEL rules run and report with their messages.
    let mut cel_only = json!({
        "apiVersion": "baeke.info/v1", "kind": "DemoWeb",
        "metadata": {"name": "Web"},
        "spec": {"gitrepo": "file:///etc/passwd", "replicas": 2000},
    });
    s.prune(&mut cel_only);
    s.apply_defaults(&mut cel_only);
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let rule_message = |node: &Value| node["x-kubernetes-validations"][0]["message"].clone();
    let name_message = rule_message(root);
    let gitrepo_message = rule_message(&root["properties"]["spec"]["properties"]["gitrepo"]);
    assert_eq!(
        messages(&s.validate(&cel_only, None)),
        vec![
            format!("<nil>: Invalid value: {}", name_message.as_str().unwrap()),
            format!(
                r#"spec.gitrepo: Invalid value: "file:///etc/passwd": {}"#,
                gitrepo_message.as_str().unwrap()
            ),
            "spec.replicas: Invalid value: 2000: replicas must be between 0 and 1000".to_string(),
        ]
    );
}

#[test]
fn crd_validation_failures() {
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        ("valid", |_| {}, vec![]),
        (
            "name must be plural.group",
            |c| c["metadata"]["name"] = json!("demoweb.baeke.info"),
            vec![
                r#"metadata.name: Invalid value: "demoweb.baeke.info": must be spec.names.plural+"."+spec.group"#,
            ],
        ),
        (
            "group needs a dot",
            |c| {
                c["spec"]["group"] = json!("baeke");
                c["metadata"]["name"] = json!("demowebs.baeke");
            },
            vec![r#"spec.group: Invalid value: "baeke": should be a domain with at least one dot"#],
        ),
        (
            "kind required",
            |c| {
                c["spec"]["names"].as_object_mut().unwrap().remove("kind");
            },
            // listKind defaults from kind, so it is missing too.
            vec![
                "spec.names.kind: Required value",
                "spec.names.listKind: Required value",
            ],
        ),
        (
            "bad short name",
            |c| c["spec"]["names"]["shortNames"] = json!(["D_W"]),
            vec![
                r#"spec.names.shortNames[0]: Invalid value: "D_W": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
            ],
        ),
        (
            "bad scope",
            |c| c["spec"]["scope"] = json!("Global"),
            vec![
                r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
            ],
        ),
        (
            "no storage version",
            |c| c["spec"]["versions"][0]["storage"] = json!(false),
            vec!["must have exactly one version marked as storage version"],
        ),
        (
            "schema required",
            |c| {
                c["spec"]["versions"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("schema");
            },
            vec!["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"],
        ),
        (
            "printer column path",
            |c| {
                c["spec"]["versions"][0]["additionalPrinterColumns"][0]["jsonPath"] =
                    json!("spec.replicas")
            },
            vec![
                r#"spec.additionalPrinterColumns[0].JSONPath: Invalid value: "spec.replicas": must be a simple json path starting with ."#,
            ],
        ),
        (
            "printer column type",
            |c| c["spec"]["versions"][0]["additionalPrinterColumns"][0]["type"] = json!("int"),
            vec![
                r#"spec.additionalPrinterColumns[0].type: Invalid value: "int": must be one of boolean,date,integer,number,string"#,
            ],
        ),
        (
            "scale subresource paths",
            |c| {
                c["spec"]["versions"][0]["subresources"]["scale"] = json!({"specReplicasPath": ".replicas", "statusReplicasPath": ".status.replicas"})
            },
            vec![
                r#"spec.subresources.scale.specReplicasPath: Invalid value: ".replicas": should be a json path under .spec"#,
            ],
        ),
        (
            "status subresource narrows the root schema",
            |c| {
                c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["additionalProperties"] =
                    json!({"type": "string"})
            },
            vec![
                "fields are allowed at the root of the schema if the status subresource is enabled",
                "additionalProperties and properties are mutual exclusive",
                "spec.validation.openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root",
            ],
        ),
        (
            "deprecation warning only for deprecated versions",
            |c| c["spec"]["versions"][0]["deprecationWarning"] = json!("old"),
            vec![
                r#"spec.versions[0].deprecationWarning: Invalid value: "old": can only be set for deprecated versions"#,
            ],
        ),
        (
            "webhook conversion needs a client config",
            |c| c["spec"]["conversion"] = json!({"strategy": "Webhook"}),
            vec![
                "spec.conversion.webhook.clientConfig: Required value: required when strategy is set to Webhook",
                "spec.conversion.webhook.conversionReviewVersions: Required value",
            ],
        ),
        (
            "schema compile error reported under spec.validation",
            |c| {
                c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
                    [0]["rule"] = json!("self.metadata.nope == 1")
            },
            vec![
                "spec.validation.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: ",
            ],
        ),
    ];
    for (name, edit, want) in cases {
        let mut crd = demoweb_crd();
        edit(&mut crd);
        let got = messages(&validate_crd(&crd));
        assert_eq!(got.len(), want.len(), "{name}: {got:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!(g.contains(w), "{name}: {g} does not contain {w}");
        }
    }
}

#[test]
fn per_version_schemas_are_reported_per_version() {
    let mut crd = demoweb_crd();
    let mut v2 = crd["spec"]["versions"][0].clone();
    v2["name"] = json!("v2");
    v2["storage"] = json!(false);
    v2["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["x"] =
        json!({"properties": {}});
    crd["spec"]["versions"].as_array_mut().unwrap().push(v2);
    assert_eq!(
        messages(&validate_crd(&crd)),
        vec![
            "spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[x].type: Required value: must not be empty for specified object fields"
        ]
    );
}

#[test]
fn ratcheting_on_update() {
    let s = StructuralSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 3},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string", "maxLength": 2}},
            "replicas": {"type": "integer", "x-kubernetes-validations": [{"rule": "self <= 5", "message": "at most 5"}]},
            "note": {"type": "string"},
        }}}
    }))
    .unwrap();
    // Stored under a looser schema: invalid name, tag and replicas.
    let old = json!({"spec": {"name": "toolong", "tags": ["abc"], "replicas": 9, "note": "a"}});
    // Changing another field leaves the old violations alone, as kube-apiserver ratchets them;
    // the ratcheted rule failure comes back as a warning.
    let only_note =
        json!({"spec": {"name": "toolong", "tags": ["abc"], "replicas": 9, "note": "b"}});
    let (errors, warnings) = s.validate_with_warnings(&only_note, Some(&old));
    assert_eq!(messages(&errors), Vec::<String>::new());
    assert_eq!(
        messages(&warnings),
        vec!["spec.replicas: Invalid value: 9: at most 5"]
    );
    // A set item that is still there is unchanged; a new one is validated.
    let new_tag = json!({"spec": {"name": "toolong", "tags": ["abc", "def"], "replicas": 9}});
    assert_eq!(
        messages(&s.validate(&new_tag, Some(&old))),
        vec![
            "spec.tags[1]: Too long: may not be more than 2 bytes",
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ]
    );
    // Touching the invalid fields validates them again.
    let touched = json!({"spec": {"name": "longer", "replicas": 8}});
    assert_eq!(
        messages(&s.validate(&touched, Some(&old))),
        vec![
            "spec.name: Too long: may not be more than 3 bytes",
            "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ]
    );
    // On create everything is validated.
    assert_eq!(s.validate(&old, None).len(), 3);
}

#[test]
fn defaults_must_be_valid_and_pruned() {
    let refused = |prop: Value| -> Vec<String> {
        match StructuralSchema::new(
            &json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"x": prop}}}}),
        ) {
            Ok(_) => vec![],
            Err(e) => messages(&e),
        }
    };
    assert_eq!(
        refused(json!({"type": "integer", "default": 3, "maximum": 5})),
        Vec::<String>::new()
    );
    assert_eq!(
        refused(json!({"type": "integer", "default": 7, "maximum": 5})),
        vec![
            "spec.validation.openAPIV3Schema.properties[spec].properties[x].default: Invalid value: 7:  in body should be less than or equal to 5"
        ]
    );
    assert_eq!(
        refused(
            json!({"type": "object", "default": {"a": 1}, "properties": {"b": {"type": "string"}}})
        ),
        vec![
            r#"spec.validation.openAPIV3Schema.properties[spec].properties[x].default: Invalid value: {"a":1}: must not have unknown fields"#
        ]
    );
    assert_eq!(
        refused(
            json!({"type": "string", "default": "-x", "x-kubernetes-validations": [{"rule": "!self.startsWith('-')", "message": "no dash"}]})
        ),
        vec![
            r#"spec.validation.openAPIV3Schema.properties[spec].properties[x].default: Invalid value: "-x": no dash"#
        ]
    );
    let in_metadata = StructuralSchema::new(
        &json!({"type": "object", "properties": {"metadata": {"type": "object",
        "properties": {"name": {"type": "string", "default": "x"}}}}}),
    )
    .unwrap_err();
    assert_eq!(
        messages(&in_metadata),
        vec![
            "spec.validation.openAPIV3Schema.properties[metadata].properties[name].default: Forbidden: must not be set in top-level metadata"
        ]
    );
}

#[test]
fn embedded_resources_need_api_version_and_kind() {
    let s = schema(
        json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true,
        "x-kubernetes-preserve-unknown-fields": true}}),
    );
    assert_eq!(
        validate_spec(&s, json!({"template": {"metadata": {"name": "x"}}})),
        vec![
            "spec.template.apiVersion: Required value: must not be empty",
            "spec.template.kind: Required value: must not be empty",
        ]
    );
    assert!(
        validate_spec(
            &s,
            json!({"template": {"apiVersion": "v1", "kind": "Pod", "spec": {"x": 1}}})
        )
        .is_empty()
    );
}

#[test]
fn cel_sees_durations_timestamps_and_bytes() {
    let s = StructuralSchema::new(&json!({
        "type": "object",
        "properties": {"spec": {"type": "object",
            "properties": {
                "period": {"type": "string", "format": "duration"},
                "at": {"type": "string", "format": "date-time"},
                "blob": {"type": "string", "format": "byte"},
                "port": {"x-kubernetes-int-or-string": true},
            },
            "x-kubernetes-validations": [
                {"rule": "!has(self.period) || self.period >= duration('10s')", "message": "period must be at least 10s"},
                {"rule": "!has(self.at) || self.at < timestamp('2100-01-01T00:00:00Z')", "message": "too late"},
                {"rule": "!has(self.blob) || size(self.blob) == 5", "message": "blob must be 5 bytes"},
                {"rule": "!has(self.port) || (type(self.port) == int ? self.port > 0 : self.port.size() > 0)", "message": "bad port"},
            ]}}
    }))
    .unwrap();
    assert!(
        validate_spec(
            &s,
            json!({"period": "1m", "at": "2024-01-01T00:00:00Z", "blob": "aGVsbG8=", "port": 80})
        )
        .is_empty()
    );
    assert!(validate_spec(&s, json!({"port": "http"})).is_empty());
    assert_eq!(
        validate_spec(
            &s,
            json!({"period": "5s", "at": "2200-01-01T00:00:00Z", "blob": "aGk=", "port": 0})
        ),
        vec![
            "spec: Invalid value: period must be at least 10s",
            "spec: Invalid value: too late",
            "spec: Invalid value: blob must be 5 bytes",
            "spec: Invalid value: bad port",
        ]
    );
}

#[test]
fn rules_the_real_server_accepts_compile() {
    let props = json!({
        "replicas": {"type": "integer"},
        "ratio": {"type": "number"},
        "gitrepo": {"type": "string", "maxLength": 2048},
        "tags": {"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 63}},
        "labels": {"type": "object", "maxProperties": 16, "additionalProperties": {"type": "string", "maxLength": 63}},
        "ingress": {"type": "object", "properties": {"host": {"type": "string"}, "path": {"type": "string"}}},
        "rules": {"type": "array", "maxItems": 16, "items": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 253}, "filters": {"type": "array", "maxItems": 16, "items": {"type": "object", "properties": {
                "type": {"type": "string"}, "headerModifier": {"type": "object"}}}}}}},
        "port": {"x-kubernetes-int-or-string": true},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    });
    let rules = [
        "self.tags.all(t, t.size() <= 63) && size(self.tags.filter(t, t == 'a')) <= 1",
        "(has(self.ingress) && has(self.ingress.host)) ? self.ingress.host.endsWith('.com') : true",
        "self.ratio * 2.0 < 10.0 && self.replicas * 2 <= 20 && self.replicas > 1.5",
        "self.labels.exists(k, self.labels[k] == 'x') || self.labels.size() == 0",
        "self.?ingress.host.orValue('') == '' || self.ingress.host != ''",
        "self.rules.all(r, r.filters.all(f, f.type == 'RequestHeaderModifier' ? has(f.headerModifier) : !has(f.headerModifier)))",
        "self.rules.all(r1, self.rules.exists_one(r2, r1.name == r2.name))",
        "self.tags.map(t, t.lowerAscii()).all(t, t.matches('^[a-z]+$'))",
        "!has(self.port) || (type(self.port) == string ? self.port.matches('^[a-z]+$') : int(self.port) > 0)",
        "has(self.free) || has(self.port)",
        "self.gitrepo.split('/').size() > 2 && self.gitrepo.indexOf(':') >= 0",
        "string(self.replicas) + '!' == '3!' || self.replicas != 3",
        "self.tags.isSorted() && self.tags.size() == self.tags.map(t, t).size()",
        "url(self.gitrepo).getScheme() in ['https', 'ssh']",
        "self.ingress.path.startsWith('/') && !self.ingress.path.contains('..')",
    ];
    for rule in rules {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props.clone(),
            "x-kubernetes-validations": [{"rule": rule}]}}});
        if let Err(e) = StructuralSchema::new(&s) {
            panic!("{rule}: {:?}", messages(&e));
        }
    }
}

#[test]
fn rule_cost_budget() {
    let compile = |ranges: Value, rules: Value| {
        StructuralSchema::new(
            &json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"ranges": ranges}, "x-kubernetes-validations": rules}}}),
        )
        .map(|_| ())
        .map_err(|e| messages(&e))
    };
    let all_cidrs = json!([{"rule": "self.ranges.all(r, isCIDR(r))"}]);
    // Unbounded list of unbounded strings: refused, as the real server does.
    assert_eq!(
        compile(json!({"type": "array", "items": {"type": "string"}}), all_cidrs.clone()),
        Err(vec!["spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by factor of more than 100x (try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and strings are declared)".to_string()])
    );
    // Bounded: accepted.
    assert_eq!(
        compile(
            json!({"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 43}}),
            all_cidrs
        ),
        Ok(())
    );
    // A rule on each item of an unbounded list runs once per item: the schema total decides.
    let per_item = |max_length: Option<u64>| {
        let mut item =
            json!({"type": "string", "x-kubernetes-validations": [{"rule": "isCIDR(self)"}]});
        if let Some(m) = max_length {
            item["maxLength"] = json!(m);
        }
        compile(json!({"type": "array", "items": item}), json!([]))
    };
    assert_eq!(per_item(Some(43)), Ok(()));
    let refused = per_item(None).unwrap_err();
    assert_eq!(
        refused[0],
        "spec.validation.openAPIV3Schema.properties[spec].properties[ranges].items.x-kubernetes-validations[0].rule: Forbidden: contributed to estimated rule & messageExpression cost total exceeding cost limit for entire OpenAPIv3 schema"
    );
    assert!(
        refused[1].starts_with("spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule & messageExpression cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x"),
        "{refused:?}"
    );
}

#[test]
fn prefix_and_suffix_tests_cost_the_length_of_the_prefix() {
    // cel-go charges `startsWith`/`endsWith` by the argument's length, so a bounded map of
    // unbounded keys may be tested against many constant prefixes; `contains` still reads the
    // whole string and is refused.
    let compile = |rule: &str| {
        StructuralSchema::new(
            &json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"labels": {"type": "object", "maxProperties": 64,
                "additionalProperties": {"type": "string"},
                "x-kubernetes-validations": [{"rule": rule}]}}}}}),
        )
        .map(|_| ())
        .map_err(|e| messages(&e))
    };
    let many: Vec<String> = (0..100)
        .map(|i| format!("k.startsWith('example.com/p{i}-') || k.endsWith('-s{i}')"))
        .collect();
    assert_eq!(
        compile(&format!("!self.exists(k, {})", many.join(" || "))),
        Ok(())
    );
    assert!(compile("!self.exists(k, self[k].contains('x'))").is_err());
}

#[test]
fn schemas_can_be_shared_between_request_handlers() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<StructuralSchema>();
    assert_send_sync::<FieldError>();
}

#[test]
fn non_ascii_rules_and_values_do_not_panic() {
    let s = schema(
        json!({"name": {"type": "string", "maxLength": 10, "x-kubernetes-validations": [
        {"rule": "self != 'ümlaut' && self.size() < 8", "message": "nicht erlaubt: ü"}]}}),
    );
    assert_eq!(
        validate_spec(&s, json!({"name": "ümlaut"})),
        vec![r#"spec.name: Invalid value: "ümlaut": nicht erlaubt: ü"#]
    );
    let refused = |rule: &str| {
        StructuralSchema::new(
            &json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": rule}]}}}),
        )
        .unwrap_err()
        .remove(0)
        .detail
    };
    // Positions count characters, as cel-go does.
    let unknown = refused("'äöü' == nope");
    assert!(
        unknown
            .starts_with("compilation failed: ERROR: <input>:1:10: undeclared reference to 'nope'"),
        "{unknown}"
    );
    let syntax = refused("'äöü' == nöpe");
    assert!(
        syntax.starts_with("compilation failed: ERROR: <input>:1:11: Syntax error"),
        "{syntax}"
    );
}

/// Cases from kube-apiserver's own CRD validation tests, with the violations it reports.
#[test]
fn structural_violations_as_kube_apiserver_reports_them() {
    let p = "spec.validation.openAPIV3Schema";
    let cases: Vec<(&str, &str, Vec<String>)> = vec![
        (
            "missing types",
            "properties: {foo: {properties: {a: {}}}, bar: {items: {additionalProperties: {properties: {a: {}}, items: {}}}}, json: {x-kubernetes-preserve-unknown-fields: true, properties: {a: {}}}, int-or-string: {x-kubernetes-int-or-string: true, properties: {a: {}}}}",
            vec![
                format!("{p}.type: Required value: must not be empty at the root"),
                format!(
                    "{p}.properties[bar].type: Required value: must not be empty for specified object fields"
                ),
                format!(
                    "{p}.properties[bar].items.type: Required value: must not be empty for specified array items"
                ),
                format!(
                    "{p}.properties[bar].items.additionalProperties.type: Required value: must not be empty for specified object fields"
                ),
                format!(
                    "{p}.properties[bar].items.additionalProperties.properties[a].type: Required value: must not be empty for specified object fields"
                ),
                format!(
                    "{p}.properties[bar].items.additionalProperties.items.type: Required value: must not be empty for specified array items"
                ),
                format!(
                    "{p}.properties[foo].type: Required value: must not be empty for specified object fields"
                ),
                format!(
                    "{p}.properties[foo].properties[a].type: Required value: must not be empty for specified object fields"
                ),
                format!(
                    "{p}.properties[int-or-string].properties[a].type: Required value: must not be empty for specified object fields"
                ),
                format!(
                    "{p}.properties[json].properties[a].type: Required value: must not be empty for specified object fields"
                ),
            ],
        ),
        (
            "forbidden in nested value validation",
            "type: object\nproperties: {foo: {type: string}}\nnot: {type: string, additionalProperties: true, title: hello, description: world, nullable: true}",
            vec![
                format!(
                    "{p}.not.additionalProperties: Forbidden: must be undefined to be structural"
                ),
                format!("{p}.not.description: Forbidden: must be empty to be structural"),
                format!("{p}.not.nullable: Forbidden: must be false to be structural"),
                format!("{p}.not.title: Forbidden: must be empty to be structural"),
                format!("{p}.not.type: Forbidden: must be empty to be structural"),
            ],
        ),
        (
            "int-or-string alternatives",
            "type: object\nproperties:\n  b: {x-kubernetes-int-or-string: true, anyOf: [{type: integer}, {type: string}], allOf: [{pattern: abc}]}\n  c: {x-kubernetes-int-or-string: true, allOf: [{anyOf: [{type: integer}, {type: string}]}, {pattern: abc}]}\n  g: {x-kubernetes-int-or-string: true, anyOf: [{type: string}, {type: integer}]}",
            vec![
                format!(
                    "{p}.properties[g].anyOf[0].type: Forbidden: must be empty to be structural"
                ),
                format!(
                    "{p}.properties[g].anyOf[1].type: Forbidden: must be empty to be structural"
                ),
            ],
        ),
        (
            "additionalProperties at the root",
            "type: object\nadditionalProperties: false",
            vec![format!(
                "{p}.additionalProperties: Forbidden: must not be used at the root"
            )],
        ),
        (
            "structural incomplete",
            "type: object\nproperties: {b: {type: object, properties: {b: {type: array}}}}\nnot: {properties: {a: {}, b: {not: {properties: {a: {}}}}}}\nallOf: [{properties: {e: {}}}]",
            vec![
                format!("{p}.properties[b].properties[b].items: Required value: must be specified"),
                format!(
                    "{p}.properties[e]: Required value: because it is defined in {p}.allOf[0].properties[e]"
                ),
                format!(
                    "{p}.properties[a]: Required value: because it is defined in {p}.not.properties[a]"
                ),
                format!(
                    "{p}.properties[b].properties[a]: Required value: because it is defined in {p}.not.properties[b].not.properties[a]"
                ),
            ],
        ),
        (
            "metadata with other properties",
            "type: object\nproperties: {metadata: {properties: {name: {pattern: '^[a-z]+$'}, labels: {type: object}}}}",
            vec![
                format!(
                    "{p}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
                ),
                format!(r#"{p}.properties[metadata].type: Invalid value: "": must be object"#),
                format!(
                    "{p}.properties[metadata].type: Required value: must not be empty for specified object fields"
                ),
                format!(
                    "{p}.properties[metadata].properties[name].type: Required value: must not be empty for specified object fields"
                ),
            ],
        ),
        (
            "metadata name constraint is fine",
            "type: object\nproperties: {metadata: {type: object, properties: {name: {type: string, pattern: '^[a-z]+$'}}}}",
            vec![],
        ),
        (
            "metadata under junctors",
            "type: object\nproperties: {metadata: {type: object}}\nanyOf: [{properties: {metadata: {}}}]",
            vec![format!(
                "{p}.anyOf[0].properties[metadata]: Forbidden: must not be specified in a nested context"
            )],
        ),
        (
            "embedded resource without properties",
            "type: object\nx-kubernetes-embedded-resource: true",
            vec![format!(
                "{p}.properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
            )],
        ),
        (
            "embedded resource with wrong type",
            "type: array\nitems: {type: string}\nx-kubernetes-embedded-resource: true\nx-kubernetes-preserve-unknown-fields: true",
            vec![
                format!(
                    r#"{p}.type: Invalid value: "array": must be object if x-kubernetes-embedded-resource is true"#
                ),
                format!(r#"{p}.type: Invalid value: "array": must be object at the root"#),
            ],
        ),
        (
            "int-or-string and preserve-unknown-fields",
            "x-kubernetes-preserve-unknown-fields: true\nx-kubernetes-int-or-string: true",
            vec![format!(
                "{p}.x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true"
            )],
        ),
    ];
    for (name, yaml, want) in cases {
        let schema: Value = serde_yaml::from_str(yaml).unwrap();
        let mut got = match StructuralSchema::new(&schema) {
            Ok(_) => vec![],
            Err(e) => messages(&e),
        };
        let mut want = want;
        got.sort();
        want.sort();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn protected_groups_need_api_approval() {
    let crd = |annotation: Option<&str>| {
        let mut c = demoweb_crd();
        c["spec"]["group"] = json!("aadpodidentity.k8s.io");
        c["metadata"]["name"] = json!("demowebs.aadpodidentity.k8s.io");
        if let Some(a) = annotation {
            c["metadata"]["annotations"] = json!({"api-approved.kubernetes.io": a});
        }
        c
    };
    assert_eq!(
        messages(&validate_crd(&crd(None))),
        vec![
            r#"metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111"#
        ]
    );
    assert_eq!(
        messages(&validate_crd(&crd(Some("bad value")))),
        vec![
            r#"metadata.annotations[api-approved.kubernetes.io]: Invalid value: "bad value": protected groups must have approval annotation "api-approved.kubernetes.io" with either a URL or a reason starting with "unapproved", see https://github.com/kubernetes/enhancements/pull/1111"#
        ]
    );
    assert!(validate_crd(&crd(Some("unapproved, third-party API"))).is_empty());
    assert!(
        validate_crd(&crd(Some(
            "https://github.com/kubernetes/kubernetes/pull/78458"
        )))
        .is_empty()
    );
    // An unchanged invalid annotation does not block an update.
    assert!(validate_crd_update(&crd(Some("bad value")), Some(&crd(Some("bad value")))).is_empty());
    // Other groups need nothing.
    assert!(validate_crd(&demoweb_crd()).is_empty());
}

#[test]
fn rules_in_all_of_run_against_their_node() {
    let s = schema(
        json!({"x": {"type": "object", "properties": {"a": {"type": "integer"}},
        "allOf": [{"x-kubernetes-validations": [{"rule": "self.a < 3", "message": "a too big"}]}]}}),
    );
    assert!(validate_spec(&s, json!({"x": {"a": 1}})).is_empty());
    assert_eq!(
        validate_spec(&s, json!({"x": {"a": 5}})),
        vec!["spec.x: Invalid value: a too big"]
    );
    let refused = StructuralSchema::new(
        &json!({"type": "object", "properties": {"x": {"type": "object",
        "allOf": [{"x-kubernetes-validations": [{"rule": "self.nope"}]}]}}}),
    )
    .unwrap_err();
    assert_eq!(
        refused[0].field,
        "spec.validation.openAPIV3Schema.properties[x].allOf[0].x-kubernetes-validations[0].rule"
    );
}

#[test]
fn odd_input_is_reported_not_panicked_on() {
    let crds = [
        json!(null),
        json!({}),
        json!({"spec": "nope"}),
        json!({"spec": {"versions": "v1", "names": 3}}),
        json!({"spec": {"versions": [{"schema": {"openAPIV3Schema": "x"}}]}}),
        json!({"spec": {"versions": [{"name": "v1", "storage": true, "schema": {"openAPIV3Schema": {"type": "object",
            "properties": {"a": [], "b": {"items": [1]}, "c": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k", "k"]}},
            "x-kubernetes-validations": "rules", "required": "a"}}}]}}),
    ];
    for crd in crds {
        assert!(!validate_crd(&crd).is_empty(), "{crd}");
    }
    let s = schema(
        json!({"n": {"type": "integer", "maximum": 3}, "l": {"type": "array", "items": {"type": "string"}}}),
    );
    for obj in [
        json!(null),
        json!([]),
        json!("x"),
        json!({"spec": []}),
        json!({"spec": {"n": [], "l": {}}}),
    ] {
        let mut o = obj.clone();
        s.prune(&mut o);
        s.apply_defaults(&mut o);
        let _ = s.validate(&o, Some(&json!("garbage")));
        let _ = s.unknown_fields(&obj);
    }
}

#[test]
fn merge_topology_for_server_side_apply() {
    let crd = demoweb_crd();
    let s =
        StructuralSchema::new(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]).unwrap();
    let cases: Vec<(Vec<&str>, Option<Topology>)> = vec![
        (
            vec!["status", "conditions"],
            Some(Topology::Map(vec!["type".to_string()])),
        ),
        (vec!["status", "conditions", "0"], Some(Topology::Granular)),
        (
            vec!["status", "conditions", "0", "status"],
            Some(Topology::Atomic),
        ),
        (vec!["spec"], Some(Topology::Granular)),
        (
            vec!["spec", "ingress", "allowedSourceRanges"],
            Some(Topology::Set),
        ),
        (vec!["spec", "replicas"], Some(Topology::Atomic)),
        (vec!["spec", "nothing"], None),
    ];
    for (path, want) in cases {
        assert_eq!(s.topology(&path), want, "{path:?}");
    }
    let sets = schema(
        json!({"tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "sel": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}}}),
    );
    assert_eq!(sets.topology(&["spec", "tags"]), Some(Topology::Set));
    assert_eq!(sets.topology(&["spec", "sel"]), Some(Topology::Atomic));
}

#[test]
fn cel_syntax_variants_evaluate() {
    let rule_ok = |rule: &str, spec: Value| {
        let s = cel_schema(
            json!([{"rule": rule}]),
            json!({"name": {"type": "string", "maxLength": 20},
            "ingress": {"type": "object", "properties": {"host": {"type": "string", "maxLength": 20}}}}),
        );
        validate_spec(&s, spec)
    };
    let cases: Vec<(&str, Value, bool)> = vec![
        (r"self.name.matches(r'^\d+$')", json!({"name": "123"}), true),
        (
            r"self.name.matches('^\\d+$')",
            json!({"name": "12a"}),
            false,
        ),
        (
            "self.?ingress.host.orValue('none') == 'none'",
            json!({"name": "x"}),
            true,
        ),
        (
            "self.?ingress.host.orValue('none') == 'a.example'",
            json!({"ingress": {"host": "a.example"}}),
            true,
        ),
        ("'''triple''' != ''", json!({}), true),
        (
            "[1, 2, 3].all(x, x > 0) && {'a': 1}.exists(k, k == 'a')",
            json!({}),
            true,
        ),
        (
            "self.all(k, k in ['name', 'ingress'])",
            json!({"name": "x"}),
            true,
        ),
        ("size(self) == 1", json!({"name": "x"}), true),
    ];
    for (rule, spec, ok) in cases {
        let errs = rule_ok(rule, spec);
        assert_eq!(errs.is_empty(), ok, "{rule}: {errs:?}");
    }
}

#[test]
fn additional_properties_true_beside_properties_keeps_unknown_fields() {
    let s = schema(
        json!({"cfg": {"type": "object", "additionalProperties": true,
        "properties": {"mode": {"type": "string", "default": "fast"}, "inner": {"type": "object", "properties": {"a": {"type": "string"}}}}}}),
    );
    let mut obj =
        json!({"spec": {"cfg": {"extra": {"x": 1}, "inner": {"a": "1", "b": "dropped"}}}});
    s.prune(&mut obj);
    s.apply_defaults(&mut obj);
    assert_eq!(
        obj["spec"]["cfg"],
        json!({"extra": {"x": 1}, "inner": {"a": "1"}, "mode": "fast"})
    );
    assert!(s.validate(&obj, None).is_empty());
}
