//! Messages for people, on stderr (stdout of `aws credentials` carries only the JSON). When stderr is captured and a
//! terminal is attached, as when the AWS CLI runs a `credential_process`, they go to the terminal instead: the AWS
//! CLI prints the captured stderr after a failure, so stderr then holds the outcome alone and each message is shown
//! once.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Ui {
    tty: Option<std::fs::File>,
    /// The spinner of [`Ui::progress`], until the next message.
    spinner: Option<ProgressBar>,
}

impl Ui {
    pub fn new() -> Ui {
        let tty = if std::io::stderr().is_terminal() {
            None
        } else {
            std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok()
        };
        Ui { tty, spinner: None }
    }

    fn write(&mut self, text: &str) {
        let _ = match &mut self.tty {
            Some(tty) => tty.write_all(text.as_bytes()),
            None => std::io::stderr().write_all(text.as_bytes()),
        };
    }

    /// One line of news.
    pub fn say(&mut self, line: &str) {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
        self.write(&format!("{}\n", cone_core::naming::printable_lines(line)));
    }

    /// Whether a person can answer prompts: a terminal is attached.
    pub fn has_terminal(&self) -> bool {
        self.tty.is_some() || std::io::stderr().is_terminal()
    }

    /// The terminal a person watches and answers on: stderr when it is one, else the one attached.
    pub fn terminal(&self) -> Option<console::Term> {
        if std::io::stderr().is_terminal() {
            return Some(console::Term::stderr());
        }
        let tty = self.tty.as_ref()?;
        Some(console::Term::read_write_pair(tty.try_clone().ok()?, tty.try_clone().ok()?))
    }

    /// Something that takes a while: a spinner with the elapsed time on a terminal, until the next message; a plain
    /// line where no person watches.
    pub fn progress(&mut self, what: &str) {
        let Some(term) = self.terminal() else {
            let _ = writeln!(std::io::stderr(), "{what}...");
            return;
        };
        let target = ProgressDrawTarget::term(term, 20);
        let style =
            ProgressStyle::with_template("{spinner} {msg}... {elapsed}").unwrap_or(ProgressStyle::default_spinner());
        let spinner = ProgressBar::with_draw_target(None, target).with_style(style).with_message(what.to_string());
        spinner.enable_steady_tick(Duration::from_millis(120));
        if let Some(old) = self.spinner.replace(spinner) {
            old.finish_and_clear();
        }
    }
}
