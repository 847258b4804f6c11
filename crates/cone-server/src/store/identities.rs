//! People, service accounts and groups: who signs in and what Identity Center says about them.

use anyhow::Result;

use super::pool::Db;
pub use super::rows::UserRow;

/// The kind of a service account's user row.
pub const USER_SERVICE: &str = "service";

/// The columns of a [`UserRow`], for statements that join users under the alias `u`.
pub(super) const USER_COLUMNS: &str =
    "u.id, u.username, u.display_name, u.email, u.idc_user_id, u.password_hash, u.kind";

impl Db {
    /// Sets a person's password (creating the user); a service account never gets one.
    pub async fn set_password(&self, username: &str, hash: &str) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO users (username, password_hash) VALUES ($1, $2)
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash WHERE users.kind = 'person'",
        )
        .bind(username)
        .bind(hash)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            anyhow::bail!(
                "{username} is a service account, which signs in only with its API tokens; give a person the password"
            );
        }
        self.data_changed();
        Ok(())
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// People (not service accounts) whose email is `email`, ignoring case; at most two, enough to tell that an
    /// email names more than one.
    pub async fn people_by_email(&self, email: &str) -> Result<Vec<UserRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u
             WHERE lower(u.email) = lower($1) AND u.email <> '' AND u.kind <> $2 ORDER BY u.id LIMIT 2"
        ))
        .bind(email)
        .bind(USER_SERVICE)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn user_groups(&self, user_id: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT g.name FROM groups g JOIN group_members m ON m.group_id = g.id WHERE m.user_id = $1 ORDER BY g.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
