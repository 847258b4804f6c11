//! The IAM inventory end to end, on SQLite and on PostgreSQL: moto holds IAM users with access keys, cone-server
//! syncs them with `aws.sync_iam` and `aws.sync_secrets`, and administrators (only) list them through the API, which
//! never carries a secret key, nor does the SQLite store. Needs `cargo build --workspace` and the .venv that
//! `cargo xtask test` prepares.

use aws_sdk_iam::types::StatusType;
use cone_api::{AccessKeyPage, IamUserPage};
use cone_client::Failure;
use cone_testkit::{Sandbox, Store, moto_sdk_config};

cone_testkit::on_both_stores!(access_keys_are_synced_and_listed_to_administrators_without_their_secrets);

/// An IAM client in member account `account`, through the OrganizationAccountAccessRole moto made there.
pub(crate) async fn member_iam(endpoint: &str, account: &str) -> aws_sdk_iam::Client {
    let sdk = moto_sdk_config(endpoint);
    let role = format!("arn:aws:iam::{account}:role/OrganizationAccountAccessRole");
    let out =
        aws_sdk_sts::Client::new(&sdk).assume_role().role_arn(role).role_session_name("seed").send().await.unwrap();
    let c = out.credentials.unwrap();
    let credentials = aws_sdk_iam::config::Credentials::new(
        c.access_key_id,
        c.secret_access_key,
        Some(c.session_token),
        None,
        "seed",
    );
    aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::from(&sdk).to_builder().credentials_provider(credentials).build(),
    )
}

/// Creates an IAM user with `keys` access keys in moto; returns the keys' (id, secret).
async fn user_with_keys(iam: &aws_sdk_iam::Client, name: &str, keys: usize) -> Vec<(String, String)> {
    iam.create_user().user_name(name).send().await.unwrap();
    let mut made = Vec::new();
    for _ in 0..keys {
        let key = iam.create_access_key().user_name(name).send().await.unwrap().access_key.unwrap();
        made.push((key.access_key_id, key.secret_access_key));
    }
    made
}

async fn access_keys_are_synced_and_listed_to_administrators_without_their_secrets(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let on_sqlite = matches!(store, Store::Sqlite);
    let settings = "  sync_iam: true\n  sync_secrets: true\n";
    let mut sb = Sandbox::start_on(store, dir.path(), settings, "").await.unwrap();
    let iam = aws_sdk_iam::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    let deployer = user_with_keys(&iam, "deployer", 2).await;
    let ci = user_with_keys(&iam, "ci", 1).await;
    iam.update_access_key()
        .user_name("deployer")
        .access_key_id(&deployer[1].0)
        .status(StatusType::Inactive)
        .send()
        .await
        .unwrap();
    iam.create_group().group_name("automation").send().await.unwrap();
    iam.add_user_to_group().group_name("automation").user_name("ci").send().await.unwrap();
    // IAM of a member account, read through its role: a user named like one of the connector's account.
    let production = sb.org.account_id("Production").unwrap().to_string();
    let member = user_with_keys(&member_iam(&sb.moto.endpoint, &production).await, "ci", 1).await;
    // A restarted server syncs before it reports ready, so the keys are there once it answers.
    sb.start_server().unwrap();
    for user in ["alice", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let (alice, carol) = (sb.client("alice").unwrap(), sb.client("carol").unwrap());
    let keys_page = async |query: &str| carol.get::<AccessKeyPage>(&format!("/api/v1/iam/access-keys{query}")).await;
    let users_page = async |query: &str| carol.get::<IamUserPage>(&format!("/api/v1/iam/users{query}")).await;

    let page = keys_page("").await.unwrap();
    assert!(page.synced);
    let listed: Vec<[&str; 5]> = page
        .access_keys
        .iter()
        .map(|k| [&k.user_name, &k.account_id, &k.account_name, &k.id, &k.status].map(String::as_str))
        .collect();
    let management = sb.org.management_account_id.as_str();
    // By user, account and key; accounts named as the catalog (Organizations) names them.
    let mut expected = vec![
        ["ci", management, "master", ci[0].0.as_str(), "Active"],
        ["ci", production.as_str(), "Production", member[0].0.as_str(), "Active"],
        ["deployer", management, "master", deployer[0].0.as_str(), "Active"],
        ["deployer", management, "master", deployer[1].0.as_str(), "Inactive"],
    ];
    expected.sort();
    assert_eq!(listed, expected);

    // Filtered by account, by name or id.
    for account in ["Production", production.as_str()] {
        let page = keys_page(&format!("?account={account}")).await.unwrap();
        let ids: Vec<&str> = page.access_keys.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, [member[0].0.as_str()], "{account}");
        let users = users_page(&format!("?account={account}")).await.unwrap();
        let names: Vec<(&str, &str)> = users.users.iter().map(|u| (u.name.as_str(), u.account_id.as_str())).collect();
        assert_eq!(names, [("ci", production.as_str())], "{account}");
    }
    for k in &page.access_keys {
        assert_eq!(k.age_days, 0, "made just now: {k:?}");
        assert!(k.user_arn.ends_with(&format!(":user/{}", k.user_name)));
    }
    // The whole answer, every field it carries, as it came.
    let body = carol.get::<serde_json::Value>("/api/v1/iam/access-keys").await.unwrap().to_string();
    assert!(body.contains("created_at"), "{body}");
    let secrets: Vec<&str> = deployer.iter().chain(&ci).chain(&member).map(|(_, secret)| secret.as_str()).collect();
    for secret in &secrets {
        assert!(!body.contains(secret), "the API answer carries a secret key: {body}");
    }

    let page = keys_page("?user=deployer&status=Inactive").await.unwrap();
    assert_eq!(page.access_keys.len(), 1);
    assert_eq!(page.access_keys[0].id, deployer[1].0);
    let page = keys_page("?page_size=2").await.unwrap();
    assert_eq!((page.access_keys.len(), page.next_page_token.as_deref()), (2, Some("2")));
    let page = keys_page(&format!("?account={management}")).await.unwrap();
    assert_eq!(page.access_keys.len(), 3);

    let users = users_page("").await.unwrap();
    let ci_user = users.users.iter().find(|u| u.name == "ci" && u.account_id == management).unwrap();
    assert_eq!((ci_user.groups.as_slice(), ci_user.access_keys), (["automation".to_string()].as_slice(), 1));

    for path in ["/api/v1/iam/access-keys", "/api/v1/iam/users"] {
        let refused = alice.get::<serde_json::Value>(path).await;
        assert!(matches!(refused, Err(Failure::Api { status: 403, .. })), "{path} is for administrators");
    }
    if on_sqlite {
        // The store and its write-ahead log, where recent writes may still be.
        let stored: Vec<u8> =
            ["cone.db", "cone.db-wal"].iter().flat_map(|f| std::fs::read(sb.dir.join(f)).unwrap_or_default()).collect();
        let stored = String::from_utf8_lossy(&stored);
        assert!(stored.contains(&deployer[0].0), "the store holds the key ids (else this check reads the wrong files)");
        for secret in &secrets {
            assert!(!stored.contains(secret), "the store holds a secret key");
        }
    }
}
