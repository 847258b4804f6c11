//! The filters of the request lists and the drift report: whose, on which account and permission set.

use maud::{Markup, html};
use serde::Deserialize;

use crate::services::tasks::{Narrow, States};

/// Whose requests, on which account and permission set, as a form and its links send them; empty means any.
#[derive(Deserialize)]
pub struct Who {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub permission_set: String,
}

impl Who {
    /// These filters, over the tasks in `states`.
    pub fn narrow(&self, states: Option<States>) -> Narrow<'_> {
        Narrow {
            states,
            user: some(&self.user),
            account: some(&self.account),
            permission_set: some(&self.permission_set),
            entitlement: None,
        }
    }

    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![("user", &self.user), ("account", &self.account), ("permission_set", &self.permission_set)]
    }

    /// The form's fields for them.
    pub fn fields(&self) -> Markup {
        html! {
            div.field { label for="user" { "Requester" } input #user name="user" value=(self.user) placeholder="alice"; }
            (self.target_fields())
        }
    }

    /// The form's fields for the account and permission set alone.
    pub fn target_fields(&self) -> Markup {
        html! {
            div.field { label for="account" { "Account" } input #account name="account" value=(self.account) placeholder="production or 111111111111"; }
            div.field { label for="permission_set" { "Permission set" } input #permission_set name="permission_set" value=(self.permission_set) placeholder="AdministratorAccess"; }
        }
    }
}

fn some(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}
