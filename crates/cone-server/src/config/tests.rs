//! Configuration files and access documents, good and bad.

use cone_core::catalog::Target;
use cone_core::policy::{Approvers, Step};

use super::*;
use crate::webhooks::SecretSource;
use cone_core::condition::{Facts, Request, Requester};

const HEAD: &str = "database: /tmp/x.db\naws: { sso_region: us-east-1, owners: [carol] }\n";

fn parse(body: &str) -> Result<Config> {
    Config::parse(&format!("{HEAD}{body}"))
}

fn error(body: &str) -> String {
    format!("{:#}", parse(body).unwrap_err())
}

fn facts(groups: &[&str], duration_secs: i64, manager: Option<&str>) -> Facts {
    Facts {
        requester: Requester {
            name: "alice".into(),
            email: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            manager: manager.map(String::from),
            attributes: BTreeMap::new(),
        },
        entitlement: cone_core::condition::Entitlement {
            app: "aws".into(),
            account_id: "1".into(),
            account_name: "Production".into(),
            permission_set: "AdministratorAccess".into(),
            group: String::new(),
        },
        request: Request::new("grant", duration_secs, false, ""),
        now: cone_core::condition::timestamp(chrono::DateTime::UNIX_EPOCH),
    }
}

fn group(g: &str, count: u32) -> Step {
    Step::Approval { from: Approvers::Group(g.into()), count }
}

#[test]
fn parses_policies_and_resolves_first_match() {
    let config = parse(
        r#"
policies:
  - name: deny-sandbox-admin
    match: { account: Sandbox, permission_set: AdministratorAccess }
    max_duration: 1h
    steps: [reject]
  - name: admin
    match: { permission_set: AdministratorAccess }
    max_duration: 1h
    steps: [{ approval: { group: approvers } }]
    emergency_steps: [accept]
  - name: dba
    match: { permission_set: DatabaseAdministrator }
    max_duration: 1h
    form: [{ name: ticket, required: true }]
    steps: [accept]
"#,
    )
    .unwrap();
    let steps = |account, ps| {
        config
            .access
            .policy_for(&Target::permission_set(account, ps))
            .steps
            .choose(&facts(&[], 60, None), "p", &[])
            .unwrap()
    };
    assert_eq!(steps("Sandbox", "AdministratorAccess"), vec![Step::Reject]);
    assert_eq!(steps("Production", "AdministratorAccess"), vec![group("approvers", 1)]);
    assert_eq!(config.access.policy_for(&Target::permission_set("Production", "DatabaseAdministrator")).form.len(), 1);
    assert_eq!(steps("Production", "Other"), vec![Step::Reject]);
    assert_eq!(config.access.policy_for(&Target::permission_set("Production", "Other")).name, "no matching policy");
    assert!(
        config
            .access
            .policy_for(&Target::permission_set("Production", "AdministratorAccess"))
            .emergency_steps
            .is_some()
    );
    assert_eq!(config.default_duration, 3600);
    assert_eq!(config.drift.interval, 0);
    assert!(config.drift.remove_unexplained.is_empty());
}

#[test]
fn branches_choose_steps_by_condition() {
    let config = parse(
        r#"
identities:
  users:
    - { name: alice, manager: dave, attributes: { team: data } }
policies:
  - name: admin
    max_duration: 8h
    steps:
      - when: request.duration > duration('1h')
        steps: [{ approval: { group: approvers, count: 2 } }, { wait: 10m }]
      - when: "'oncall' in requester.groups && requester.attributes.team == 'data'"
        steps: [{ approval: { from: manager } }, { approval: { from: self } }]
      - otherwise: [{ approval: { users: [bob, carol] } }, { approval: { from: owners } }]
"#,
    )
    .unwrap();
    let p = config.access.policy_for(&Target::permission_set("Production", "AdministratorAccess"));
    let owners = &config.aws.owners;
    assert_eq!(
        p.steps.choose(&facts(&[], 7200, None), "admin", owners).unwrap(),
        vec![group("approvers", 2), Step::Wait { secs: 600 }]
    );
    let mut oncall = facts(&["oncall"], 600, Some("dave"));
    oncall.requester.attributes.insert("team".into(), "data".into());
    assert_eq!(
        p.steps.choose(&oncall, "admin", owners).unwrap(),
        vec![
            Step::Approval { from: Approvers::Manager(Some("dave".into())), count: 1 },
            Step::Approval { from: Approvers::Requester, count: 1 },
        ]
    );
    // Without the attribute the second condition fails to evaluate: the choice stops there, naming the policy and
    // the branch, rather than fall through to the laxer `otherwise`.
    let e = p.steps.choose(&facts(&["oncall"], 600, None), "admin", owners).unwrap_err();
    assert!(e.starts_with("policy \"admin\", branch 2: the condition `'oncall' in requester.groups"), "{e}");
    assert_eq!(
        p.steps.choose(&facts(&[], 600, None), "admin", owners).unwrap(),
        vec![
            Step::Approval { from: Approvers::Users(vec!["bob".into(), "carol".into()]), count: 1 },
            Step::Approval { from: Approvers::Owners(vec!["carol".into()]), count: 1 },
        ]
    );
    assert_eq!(config.identity("alice").and_then(|u| u.manager.as_deref()), Some("dave"));
}

#[test]
fn mistakes_name_the_policy_and_the_branch() {
    let policy = |steps: &str| format!("policies:\n  - name: admin\n    max_duration: 1h\n    steps: {steps}\n");
    let cases = [
        ("[aprove]", "policy \"admin\", steps: step 1: unknown step \"aprove\""),
        ("[]", "policy \"admin\", steps: give a list of steps"),
        ("[{ approval: { group: a, users: [b] } }]", "exactly one of `group`, `users` or `from`"),
        ("[{ approval: { users: [b], count: 2 } }]", "approval asks 2 of 1 users"),
        ("[{ approval: { from: self, count: 2 } }]", "a `self` approval is one acknowledgment"),
        ("[{ approval: { from: boss } }]", "`from` is owners, manager or self"),
        ("[{ approval: { group: a, cuont: 2 } }]", "unknown field `cuont`"),
        ("[{ approval: { from: manager } }, { approval: { from: manager } }]", "2 steps ask approval from manager"),
        ("[{ wait: 2d }]", "wait 2d is not shorter than pending_timeout (24h)"),
        ("[{ when: 'true', steps: [accept] }]", "need a final `otherwise"),
        ("[{ otherwise: [accept] }, { when: 'true', steps: [accept] }]", "branch 1: `otherwise` must be the last"),
        (
            "[{ when: 'request.duration >', steps: [accept] }, { otherwise: [reject] }]",
            "branch 1: `request.duration >` is not a valid CEL",
        ),
        (
            "[{ when: 'requester.grups.size() > 0', steps: [accept] }, { otherwise: [reject] }]",
            "policy \"admin\", steps: branch 1: `requester.grups.size() > 0` fails",
        ),
        ("[{ when: 'request.duration', steps: [accept] }, { otherwise: [reject] }]", "must be true or false"),
        ("[{ when: 'requester.attributes.team == \"x\"', steps: [accept] }, { otherwise: [reject] }]", "fails"),
        ("[{ when: 'true', steps: [bogus] }, { otherwise: [reject] }]", "branch 1 (when true): step 1: unknown step"),
    ];
    for (steps, expected) in cases {
        let message = error(&policy(steps));
        assert!(message.contains(expected), "{steps}: {message}");
    }
    let no_owners = Config::parse(
        "database: /tmp/x.db\naws: { sso_region: us-east-1 }\npolicies:\n  - name: p\n    max_duration: 1h\n    \
             steps: [{ approval: { from: owners } }]\n",
    );
    assert!(format!("{:#}", no_owners.unwrap_err()).contains("`aws.owners` lists nobody"));
    assert!(error("identities: { users: [{ name: a }, { name: a }] }\n").contains("lists \"a\" twice"));
}

#[test]
fn conditions_may_read_form_fields_and_known_attributes() {
    let config = parse(
        r#"
identities: { users: [{ name: alice, attributes: { team: data } }] }
policies:
  - name: dba
    max_duration: 1h
    form: [{ name: ticket, required: true }]
    steps:
      - when: "request.form.ticket.startsWith('INC-') || requester.attributes.team == 'data'"
        steps: [accept]
      - otherwise: [{ approval: { group: dbas } }]
"#,
    );
    assert!(config.is_ok(), "{:#}", config.err().map(|e| e.to_string()).unwrap_or_default());
}

#[test]
fn typed_form_fields_are_checked_at_load() {
    let policy = |form: &str| {
        format!(
            "policies:\n  - name: dba\n    max_duration: 1h\n    form: {form}\n    steps:\n      \
                 - when: request.form.hosts > 2\n        steps: [reject]\n      - otherwise: [accept]\n"
        )
    };
    let fields = "[{ name: ticket, required: true, max_length: 20, description: The incident }, \
                      { name: hosts, type: integer, min: 1, max: 9 }, { name: regions, type: string_list, max_items: 3 }]";
    let config = parse(&policy(fields)).unwrap();
    let form = &config.access.policy_for(&Target::permission_set("Production", "DatabaseAdministrator")).form;
    assert_eq!(form[1].kind, cone_api::FieldType::Integer);
    assert_eq!(form[0].max_length, Some(20));
    let cases = [
        ("[{ name: hosts, type: integer, min: 5, max: 1 }]", "policy \"dba\": form field \"hosts\": `min` is greater"),
        ("[{ name: hosts, type: integer }, { name: hosts, type: bool }]", "\"hosts\" is defined twice"),
        ("[{ name: hosts, type: integer, max_length: 3 }]", "`max_length` applies to string and string_list"),
        ("[{ name: hosts, type: integer, maximum: 3 }]", "form field \"hosts\": unknown key `maximum`"),
        ("[{ name: hosts, type: number }]", "form field \"hosts\": unknown variant `number`"),
        // The condition compares with an integer, which a string field is not.
        ("[{ name: hosts }]", "request.form.hosts > 2"),
    ];
    for (form, expected) in cases {
        let message = error(&policy(form));
        assert!(message.contains(expected), "{form}: {message}");
    }
}

#[test]
fn parses_the_catalog() {
    let config = parse(
        "access_profiles:\n  - { name: ro, visible_to: { everyone: true }, entitlements: [{ permission_set: R }] }\n\
             entitlement_management:\n  - { match: { account: Sandbox }, requestable: false }\n  \
             - { requestable: true, access_profile: ro }\n",
    )
    .unwrap();
    assert_eq!(config.access.catalog.profiles[0].entitlements[0].permission_set.as_deref(), Some("R"));
    assert!(!config.access.catalog.rules[0].requestable);
    assert!(error("entitlement_management: [{ requestable: true, access_profile: x }]\n").contains("\"x\""));
    assert!(
        error("access_profiles: [{ name: a, visible_to: { everyone: true }, entitlement: [] }]\n")
            .contains("entitlement")
    );
}

#[test]
fn parses_the_drift_section() {
    let config = parse("drift: { interval: 5m, remove_unexplained: [AdministratorAccess] }\n").unwrap();
    assert_eq!(config.drift.interval, 300);
    assert_eq!(config.drift.remove_unexplained, vec!["AdministratorAccess".to_string()]);
    assert!(parse("drift: { interval: 5m, remove: [A] }\n").is_err());
}

#[test]
fn parses_webhooks_and_keeps_their_secrets_out_of_the_file() {
    let config = parse(
        "webhooks:\n  - { name: chat, url: 'https://hooks.example.com/cone', secret_env: CHAT_SECRET, \
             events: [task.*, grant.revoke] }\n  - { name: siem, url: 'http://127.0.0.1:9000/in', \
             secret_file: /etc/cone/siem.secret, events: ['*'], max_attempts: 3 }\n",
    )
    .unwrap();
    let [chat, siem] = &config.webhooks[..] else { panic!("two webhooks: {:?}", config.webhooks) };
    assert_eq!(chat.secret, SecretSource::Env("CHAT_SECRET".into()));
    assert_eq!((chat.events.len(), chat.max_attempts), (2, 15));
    assert_eq!(siem.secret, SecretSource::File("/etc/cone/siem.secret".into()));
    assert_eq!((siem.url.as_str(), siem.max_attempts), ("http://127.0.0.1:9000/in", 3));

    let hook = |fields: &str| format!("webhooks: [{{ name: chat, url: 'https://h.example/x', {fields} }}]\n");
    let cases = [
        ("secret: hunter2hunter2hunter2, events: ['*']", "may not be written in the configuration"),
        ("events: ['*']", "exactly one of `secret_env` and `secret_file`"),
        ("secret_env: A, secret_file: /x, events: ['*']", "exactly one of"),
        ("secret_env: A, events: []", "`events` lists nothing"),
        ("secret_env: A, events: [drift.*]", "unknown event \"drift.*\""),
        ("secret_env: A, events: [grant.revoked]", "unknown event \"grant.revoked\""),
        ("secret_env: A, events: ['*'], max_attempts: 0", "between 1 and 100"),
        ("secret_env: A, events: ['*'], retries: 3", "unknown field `retries`"),
    ];
    for (fields, expected) in cases {
        let message = error(&hook(fields));
        assert!(message.contains(expected), "{fields}: {message}");
        assert!(!message.contains("hunter2"), "the secret is repeated: {message}");
    }
    let bad_url = "webhooks: [{ name: chat, url: 'ftp://h.example/x', secret_env: A, events: ['*'] }]\n";
    assert!(error(bad_url).contains("http:// or https://"));
    let twice = "webhooks: [{ name: a, url: 'https://h.example/1', secret_env: A, events: ['*'] }, \
                     { name: a, url: 'https://h.example/2', secret_env: B, events: ['*'] }]\n";
    assert!(error(twice).contains("two webhooks are named \"a\""));
}

#[test]
fn parses_an_openid_connect_provider_whose_secret_stays_out_of_the_file() {
    let base = "oidc: { name: Okta, issuer: 'https://idp.example.com/', client_id: cone";
    let oidc = parse(&format!("{base}, secret_file: /etc/cone/oidc.secret }}\n")).unwrap().oidc.unwrap();
    assert_eq!(oidc.issuer, "https://idp.example.com");
    assert_eq!(oidc.secret, SecretSource::File("/etc/cone/oidc.secret".into()));
    assert_eq!((oidc.claim.as_str(), oidc.match_user_by), ("email", UserField::Email));
    let by_name = parse(&format!("{base}, secret_env: S, claim: preferred_username }}\n")).unwrap().oidc.unwrap();
    assert_eq!(by_name.match_user_by, UserField::Username);
    let cases = [
        (", client_secret: hunter2hunter2hunter2", "may not be written in the configuration"),
        ("", "exactly one of `secret_env` and `secret_file`"),
        (", secret_env: S, scope: x", "unknown field `scope`"),
        (", secret_env: S, match_user_by: phone", "unknown variant `phone`"),
        (", secret_env: S, claim: upn", "one of email, preferred_username, sub"),
    ];
    for (fields, expected) in cases {
        let message = error(&format!("{base}{fields} }}\n"));
        assert!(message.contains(expected), "{fields}: {message}");
        assert!(!message.contains("hunter2"), "the secret is repeated: {message}");
    }
    let bad_issuer = "oidc: { name: X, issuer: idp.example.com, client_id: c, secret_env: S }\n";
    assert!(error(bad_issuer).contains("`issuer` must be"), "{}", error(bad_issuer));
}

#[test]
fn database_is_a_sqlite_path_or_a_postgres_url() {
    let parse = |text: &str| Database::try_from(text.to_string());
    assert_eq!(parse("/var/lib/cone/cone.db"), Ok(Database::Sqlite("/var/lib/cone/cone.db".into())));
    let pg = parse("postgres://cone:secret@db.internal:6432/cone").unwrap();
    assert_eq!(pg.to_string(), "the PostgreSQL database cone on db.internal:6432 as cone");
    let bad = parse("postgres://cone@db.internal:notaport/cone").unwrap_err();
    assert!(bad.contains("not a valid PostgreSQL URL") && bad.contains("postgres://USER:PASSWORD@HOST"), "{bad}");
}

#[test]
fn baton_provisioning_decides_when_set_and_sync_only_refuses_what_writes_to_aws() {
    let aws = |extra: &str| {
        Config::parse(&format!("database: /x.db\naws: {{ sso_region: us-east-1{extra} }}\n")).unwrap().aws
    };
    let mut on = aws("");
    assert!(on.provisioning, "provisioning is on unless turned off");
    on.set_provisioning(None).unwrap();
    assert!(on.provisioning);
    for (value, want) in [("false", false), ("0", false), ("TRUE", true), ("on", true), ("", false)] {
        let mut c = aws("");
        c.set_provisioning(Some(value)).unwrap();
        assert_eq!(c.provisioning, want, "{value:?}");
    }
    let mut off = aws(", provisioning: false");
    off.set_provisioning(Some("true")).unwrap();
    assert!(off.provisioning, "the variable, when set, decides");
    let e = aws("").set_provisioning(Some("maybe")).unwrap_err().to_string();
    assert!(e.contains("BATON_PROVISIONING is \"maybe\": set it to true"), "{e}");
    let e = aws(", revoke_sessions: true").set_provisioning(Some("false")).unwrap_err().to_string();
    assert!(e.contains("sync-only mode") && e.contains("revoke_sessions"), "{e}");
    // The path of the IAM users Cone creates is the resource of the printed policy: no wildcard widens it.
    let e = aws(", account_provisioning: { path: \"/*/\" }").set_provisioning(None).unwrap_err().to_string();
    assert!(e.contains("aws.account_provisioning.path") && e.contains("without `*` or `?`"), "{e}");
}

#[test]
fn the_configuration_reference_is_up_to_date() {
    let written = include_str!("../../../../docs/configuration.md");
    assert!(
        written == reference::markdown(),
        "docs/configuration.md differs from the configuration's types: run \
         `cargo run -q --bin cone-server -- config reference > docs/configuration.md`"
    );
}

#[test]
fn access_review_templates_are_part_of_the_access_document_and_checked() {
    let body = "access_reviews:\n  - name: quarterly-production\n    scope: { accounts: [Production] }\n    \
                reviewers: { from: manager, fallback: [carol] }\n    due_in: 14d\n    every: 90d\n  \
                - name: by-hand\n    reviewers: { from: owners }\n    due_in: 7d\n";
    let config = parse(body).unwrap();
    let reviews = &config.access.reviews;
    let got: Vec<(&str, i64, i64)> = reviews.iter().map(|t| (t.name.as_str(), t.due_in, t.every)).collect();
    assert_eq!(got, [("quarterly-production", 14 * 86_400, 90 * 86_400), ("by-hand", 7 * 86_400, 0)]);
    assert_eq!(reviews[0].scope.accounts, ["Production"]);
    assert!(config.access_document.contains("access_reviews"), "{}", config.access_document);
    // A document of its own carries them too.
    assert_eq!(config.access(&config.access_document).unwrap().reviews.len(), 2);

    let template = |name: &str, due_in: &str, every: &str| {
        format!("access_reviews:\n  - {{ name: {name}, reviewers: {{ from: owners }}, due_in: {due_in}{every} }}\n")
    };
    let twice = format!("{}{}", template("q", "14d", ""), template("q", "7d", "").replace("access_reviews:\n", ""));
    assert!(error(&twice).contains("names \"q\" twice"), "{}", error(&twice));
    assert!(error(&template("\"q 1\"", "14d", "")).contains("no template name"));
    assert!(error(&template("q", "0s", "")).contains("`0s` is not a duration"), "{}", error(&template("q", "0s", "")));
    assert!(error(&template("q", "1h", ", every: 2h")).contains("every must be at least 1d"));
    assert!(error(&template("q", "1h", ", scope: { acounts: [x] }")).contains("unknown field `acounts`"));
}
