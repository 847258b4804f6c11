//! Reading the audit log out: `cone-server export-audit` (JSON Lines), the API's and the console's pages and the
//! console's download, with the same objects, so that an export can be checked without Cone (`docs/audit.md`).

use std::io::Write;

use anyhow::{Context, Result, bail};
use cone_api::{AuditEntry, AuditPage};

use crate::error::Error;
use crate::state::AppState;
use crate::store::{AUDIT_BATCH, AuditFilter, AuditRow, Db, audit_hash};

pub fn entry(row: AuditRow) -> AuditEntry {
    let detail = serde_json::from_str(&row.detail).unwrap_or_else(|_| serde_json::Value::String(row.detail.clone()));
    AuditEntry {
        id: row.id,
        at: chrono::DateTime::from_timestamp(row.at, 0).unwrap_or_default(),
        at_unix: row.at,
        actor: row.actor,
        action: row.action,
        subject: row.subject,
        detail,
        detail_text: row.detail,
        prev_hash: row.prev_hash,
        hash: row.hash,
    }
}

/// An RFC 3339 time (`2025-01-31T09:30:00Z`, or with an offset), or a day (`2025-01-31`, from its midnight UTC),
/// as a Unix time; `what` names it in the error.
pub fn parse_time(text: &str, what: &str) -> Result<i64> {
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc().timestamp());
    }
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| {
            format!(
                "{what} \"{text}\" is not a day or an RFC 3339 time; write it like 2025-01-31 or 2025-01-31T09:30:00Z"
            )
        })?
        .timestamp())
}

/// What an export wrote.
#[derive(Debug, PartialEq, Eq)]
pub struct Exported {
    pub entries: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// The first exported entry whose hash does not match its content, or whose `prev_hash` is not the hash of the
    /// entry exported before it.
    pub chain_break: Option<i64>,
}

/// Writes the entries `filter` selects to `out`, one JSON object a line in id order, reading a page at a time (the
/// log may be far larger than memory). The chain is checked on the way: within the export, each entry must hash to
/// its `hash` and name its predecessor's in `prev_hash` (an export with `--since` starts mid-chain, so its first
/// `prev_hash` is not checked).
pub async fn export(db: &Db, mut filter: AuditFilter, out: &mut impl Write) -> Result<Exported> {
    let mut done = Exported { entries: 0, first: None, last: None, chain_break: None };
    let mut prev: Option<String> = None;
    loop {
        let rows = db.audit_entries(&filter, AUDIT_BATCH).await?;
        let Some(last) = rows.last() else { break };
        filter.after_id = last.id;
        for row in rows {
            let linked = prev.as_ref().is_none_or(|p| *p == row.prev_hash);
            let hashed =
                row.hash == audit_hash(&row.prev_hash, row.at, &row.actor, &row.action, &row.subject, &row.detail);
            // With an action filter the export skips entries, so only each entry's own hash can be checked.
            let contiguous = filter.action.is_none();
            if done.chain_break.is_none() && (!hashed || (contiguous && !linked)) {
                done.chain_break = Some(row.id);
            }
            prev = Some(row.hash.clone());
            done.first.get_or_insert(row.id);
            done.last = Some(row.id);
            done.entries += 1;
            serde_json::to_writer(&mut *out, &entry(row))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(done)
}

/// `cone-server export-audit`: to `output` (written beside it, then renamed, so a partial export never has the
/// final name, from a new file of a random name; mode 0600, as the log names people and their reasons), or to
/// standard output.
pub async fn export_to(db: &Db, filter: AuditFilter, output: Option<&std::path::Path>) -> Result<Exported> {
    let Some(path) = output else {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        return export(db, filter, &mut out).await;
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("audit");
    let partial = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}; check that it exists and is writable", dir.display()))?;
    let shown = partial.path().display().to_string();
    let mut out = std::io::BufWriter::new(partial);
    let done = export(db, filter, &mut out).await.with_context(|| format!("exporting to {shown}"))?;
    let partial =
        out.into_inner().map_err(|e| e.into_error()).with_context(|| format!("cannot finish writing {shown}"))?;
    partial.as_file().sync_all().with_context(|| format!("cannot finish writing {shown}; is the disk full?"))?;
    partial.persist(path).with_context(|| format!("cannot rename {shown} to {}", path.display()))?;
    Ok(done)
}

/// A page of `size` entries (at least 1, at most 1,000) that `filter` selects, from its `after_id` on.
pub async fn page(s: &AppState, filter: &AuditFilter, size: Option<i64>) -> Result<AuditPage, Error> {
    let size = size.unwrap_or(100).clamp(1, 1000);
    let mut rows = s.db.audit_entries(filter, size + 1).await?;
    let more = rows.len() as i64 > size;
    rows.truncate(size as usize);
    let next_page_token = more.then(|| rows.last().map(|r| r.id.to_string())).flatten();
    let entries: Vec<AuditEntry> = rows.into_iter().map(entry).collect();
    let names = names(s, &entries).await?;
    Ok(AuditPage { entries, names, next_page_token })
}

/// The entries a client asks for: from `since` to `until` (RFC 3339 times), with `action` (one, or a family
/// `grant.*`), after the page `page_token` ended (the last id it showed); empty texts ask for no limit.
pub fn filter(
    since: Option<&str>,
    until: Option<&str>,
    action: Option<&str>,
    page_token: Option<&str>,
) -> Result<AuditFilter, Error> {
    let time = |text: Option<&str>, what| -> Result<Option<i64>, Error> {
        text.filter(|t| !t.is_empty())
            .map(|t| parse_time(t, what))
            .transpose()
            .map_err(|e| Error::invalid(format!("{e:#}.")))
    };
    let after_id = super::page_token(page_token)?;
    let action = action.filter(|a| !a.is_empty()).map(str::to_string);
    Ok(AuditFilter {
        after_id,
        since: time(since, "since")?,
        until: time(until, "until")?,
        action,
        ..AuditFilter::default()
    })
}

/// `filter` narrowed to what Cone user `username` did (nothing to narrow when empty).
pub async fn by_person(s: &AppState, mut filter: AuditFilter, username: &str) -> Result<AuditFilter, Error> {
    if !username.trim().is_empty() {
        let user = s.db.user_by_name(username.trim()).await?.ok_or_else(|| {
            Error::invalid(format!(
                "There is no Cone user \"{}\"; give a user name as people sign in with it.",
                username.trim()
            ))
        })?;
        filter.actor = Some(format!("user:{}", user.id));
    }
    Ok(filter)
}

/// The names of the people `entries` name as actor or subject (`user:ID`), by that text.
async fn names(s: &AppState, entries: &[AuditEntry]) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let ids: Vec<i64> = entries
        .iter()
        .flat_map(|e| [&e.actor, &e.subject])
        .filter_map(|who| who.strip_prefix("user:")?.parse().ok())
        .collect();
    let names = s.db.usernames(&ids).await?;
    Ok(names.into_iter().map(|(id, name)| (format!("user:{id}"), name)).collect())
}

/// The entries `filter` selects as JSON Lines (the objects of `export`), read a batch at a time as the answer is
/// sent: the console's download, which may be larger than memory.
pub fn stream(s: &AppState, filter: AuditFilter) -> impl futures_util::Stream<Item = Result<Vec<u8>>> + use<> {
    let db = s.db.clone();
    futures_util::stream::try_unfold(filter, move |mut filter| {
        let db = db.clone();
        async move {
            let rows = db.audit_entries(&filter, AUDIT_BATCH).await?;
            let Some(last) = rows.last() else { return Ok(None) };
            filter.after_id = last.id;
            let mut out = Vec::new();
            for row in rows {
                serde_json::to_writer(&mut out, &entry(row))?;
                out.push(b'\n');
            }
            Ok(Some((out, filter)))
        }
    })
}

/// Fails when `since` is not before `until`.
pub fn check_range(since: Option<i64>, until: Option<i64>) -> Result<()> {
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        bail!("--since must be before --until");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Backend, record as audit};

    crate::store::testing::on_both_backends!(an_export_is_one_line_per_entry_and_notices_an_altered_chain);

    async fn an_export_is_one_line_per_entry_and_notices_an_altered_chain(db: Db) {
        for i in 0..2100 {
            let mut tx = db.begin().await.unwrap();
            let detail = serde_json::json!({ "comment": format!("n\u{e9}e {i}") }).to_string();
            audit(&mut tx, 1_700_000_000 + i, "user:1", "task.comment", "task:1", &detail).await.unwrap();
            tx.commit().await.unwrap();
        }
        let mut out = Vec::new();
        let done = export(&db, AuditFilter::default(), &mut out).await.unwrap();
        assert_eq!(done, Exported { entries: 2100, first: Some(1), last: Some(2100), chain_break: None });
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<AuditEntry> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2100);
        assert_eq!(lines[1].at.to_rfc3339(), "2023-11-14T22:13:21+00:00");
        assert_eq!((lines[1].at_unix, lines[1].detail["comment"].as_str()), (1_700_000_001, Some("n\u{e9}e 1")));
        assert_eq!(lines[1].prev_hash, lines[0].hash);

        let since = AuditFilter { since: Some(1_700_000_100), until: Some(1_700_000_200), ..Default::default() };
        let done = export(&db, since, &mut Vec::new()).await.unwrap();
        assert_eq!((done.entries, done.first, done.chain_break), (100, Some(101), None));

        // Someone with raw access rewrites an entry and drops the guard first.
        let drop = match db.backend() {
            Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
            Backend::Postgres => "DROP TRIGGER audit_log_no_update ON audit_log",
        };
        sqlx::query(drop).execute(db.pool()).await.unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'user:2' WHERE id = 1500").execute(db.pool()).await.unwrap();
        let done = export(&db, AuditFilter::default(), &mut Vec::new()).await.unwrap();
        assert_eq!((done.entries, done.chain_break), (2100, Some(1500)));
    }
}
