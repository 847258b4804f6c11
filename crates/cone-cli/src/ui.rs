//! Messages for people. Everything goes to stderr (stdout of `aws credentials` carries only the JSON); when
//! stderr is captured, as the AWS CLI does with a `credential_process`, messages also go to the terminal.

use std::io::{IsTerminal, Write};

pub struct Ui {
    tty: Option<std::fs::File>,
    /// A progress line ("..") is open and needs a newline before the next message.
    open_line: bool,
}

impl Ui {
    pub fn new() -> Ui {
        let tty = if std::io::stderr().is_terminal() {
            None
        } else {
            std::fs::OpenOptions::new().write(true).open("/dev/tty").ok()
        };
        Ui { tty, open_line: false }
    }

    fn write(&mut self, text: &str) {
        let _ = std::io::stderr().write_all(text.as_bytes());
        if let Some(tty) = &mut self.tty {
            let _ = tty.write_all(text.as_bytes());
        }
    }

    /// One line of news.
    pub fn say(&mut self, line: &str) {
        if self.open_line {
            self.write("\n");
            self.open_line = false;
        }
        self.write(&format!("{line}\n"));
    }

    /// One more dot on the progress line.
    pub fn tick(&mut self) {
        self.open_line = true;
        self.write(".");
    }

    /// Whether a person can answer prompts: a terminal is attached.
    pub fn has_terminal(&self) -> bool {
        self.tty.is_some() || std::io::stderr().is_terminal()
    }
}
