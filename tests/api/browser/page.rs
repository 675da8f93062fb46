//! Driving the page as a person would: controls found by their accessible names (what a
//! screen reader says), text typed into them, buttons pressed, and what the page then shows.

use serde_json::Value;

use super::{Browser, Size};

/// Installed in every page before its own script: finds controls by accessible name, and
/// keeps every uncaught error so a test can insist there were none.
pub(super) const HELPERS: &str = r#"
window.__errors = [];
addEventListener('error', (e) => __errors.push(String(e.message || e)));
addEventListener('unhandledrejection', (e) => __errors.push(String(e.reason && e.reason.stack || e.reason)));
window.__t = {
  shown(e) {
    if (!e.getClientRects().length) return false;
    const d = e.closest('dialog');
    if (document.querySelector('dialog[open]') && !(d && d.open)) return false; // behind a modal
    return getComputedStyle(e).visibility !== 'hidden';
  },
  name(e) {
    const label = e.getAttribute('aria-label');
    if (label) return label.trim();
    if (e.labels && e.labels.length) return e.labels[0].textContent.replace(/\s+/g, ' ').trim();
    return e.textContent.replace(/\s+/g, ' ').trim();
  },
  all(selector, name) {
    return [...document.querySelectorAll(selector)].filter((e) => this.shown(e) && this.name(e) === name);
  },
  button(name) { return this.all('button', name)[0] || null; },
  box(name) { return this.all('input, textarea, select', name)[0] || null; },
  text() { return document.body.innerText; },
};
"#;

/// A JS string literal of `s` (JSON is one).
fn js(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

impl Browser {
    /// Waits for an enabled, shown button called `name`, and presses it (found and pressed in
    /// one step, so a re-drawn page cannot swap it in between).
    pub(super) async fn click(&mut self, tab: &str, name: &str) {
        let press = format!(
            "(() => {{ const b = __t.button({}); if (!b || b.disabled) return false; b.click(); return true; }})()",
            js(name)
        );
        self.wait_for(tab, &press, &format!("the button {name:?}"))
            .await;
    }

    /// Waits for a shown text box called `name`, and types `value` into it (as `input` events
    /// see it).
    pub(super) async fn fill(&mut self, tab: &str, name: &str, value: &str) {
        let script = format!(
            "(() => {{ const b = __t.box({}); if (!b || b.disabled) return false; b.focus(); b.value = {}; \
             b.dispatchEvent(new Event('input', {{bubbles: true}})); \
             b.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
            js(name),
            js(value)
        );
        self.wait_for(tab, &script, &format!("the text box {name:?}"))
            .await;
    }

    /// Ticks or unticks the checkbox called `name` (a click, as a person would).
    pub(super) async fn toggle(&mut self, tab: &str, name: &str) {
        let press = format!(
            "(() => {{ const b = __t.box({}); if (!b || b.disabled) return false; b.click(); return true; }})()",
            js(name)
        );
        self.wait_for(tab, &press, &format!("the checkbox {name:?}"))
            .await;
    }

    /// Waits until the page no longer shows `text`.
    pub(super) async fn no_longer_sees(&mut self, tab: &str, text: &str) {
        let cond = format!("!__t.text().includes({})", js(text));
        self.wait_for(tab, &cond, &format!("{text:?} gone from the page"))
            .await;
    }

    /// Waits until the page shows `text` somewhere.
    pub(super) async fn sees(&mut self, tab: &str, text: &str) {
        let cond = format!("__t.text().includes({})", js(text));
        self.wait_for(tab, &cond, &format!("{text:?} on the page"))
            .await;
    }

    /// Waits until `text` is in the messages of the open conversation.
    pub(super) async fn sees_message(&mut self, tab: &str, text: &str) {
        let cond = format!(
            "[...document.querySelectorAll('#messages [data-message-id] .text')].some(m => m.textContent === {})",
            js(text)
        );
        self.wait_for(tab, &cond, &format!("the message {text:?}"))
            .await;
    }

    /// Logs in with the form, and waits for the live connection.
    pub(super) async fn log_in(&mut self, tab: &str, username: &str, password: &str) {
        self.wait_for(
            tab,
            "document.readyState === 'complete' && window.__t",
            "the page",
        )
        .await;
        self.fill(tab, "Username", username).await;
        self.fill(tab, "Password", password).await;
        self.click(tab, "Log in").await;
        self.connected(tab, username).await;
    }

    pub(super) async fn connected(&mut self, tab: &str, who: &str) {
        self.wait_for(
            tab,
            "document.querySelector('#status').textContent.trim() === 'connected'",
            &format!("{who}'s live connection"),
        )
        .await;
    }

    /// Opens the conversation called `title` from the list (going back to it on a phone).
    pub(super) async fn open(&mut self, tab: &str, title: &str) {
        let back = "__t.button('Back to conversations')";
        self.eval(tab, &format!("{back} && {back}.click(), true"))
            .await;
        let find = format!(
            "[...document.querySelectorAll('#conversations .conv-name')].find(n => n.textContent === {})",
            js(title)
        );
        self.wait_for(tab, &find, &format!("{title:?} in the list"))
            .await;
        self.eval(tab, &format!("({find}).closest('button').click(), true"))
            .await;
        let open = format!(
            "document.querySelector('#chat-name').textContent === {} && !document.querySelector('#composer-input').disabled",
            js(title)
        );
        self.wait_for(tab, &open, &format!("{title:?} open")).await;
    }

    /// Types `text` into the composer and sends it; waits until the server has it.
    pub(super) async fn say(&mut self, tab: &str, text: &str) {
        self.fill(tab, "Message", text).await;
        self.click(tab, "Send").await;
        self.sees_message(tab, text).await;
    }

    /// Presses the button called `button` on the message reading `text`.
    pub(super) async fn on_message(&mut self, tab: &str, text: &str, button: &str) {
        let press = format!(
            "(() => {{ const m = [...document.querySelectorAll('#messages [data-message-id]')]\
             .find(m => m.querySelector('.text').textContent === {}); \
             const b = m && m.querySelector('.actions button[aria-label^=' + JSON.stringify({}) + ']'); \
             if (!b) return false; b.click(); return true; }})()",
            js(text),
            js(button)
        );
        self.wait_for(tab, &press, &format!("{button:?} on {text:?}"))
            .await;
    }

    /// No uncaught error happened in the page.
    pub(super) async fn no_errors(&mut self, tab: &str) {
        let errors = self.eval(tab, "window.__errors").await;
        assert_eq!(errors, serde_json::json!([]), "errors in the page");
    }

    /// Saves a screenshot as DIR/{size}-{name}.png when CHATSERVER_SCREENSHOTS=DIR is set.
    pub(super) async fn snap(&mut self, tab: &str, size: Size, name: &str) {
        let Some(dir) = std::env::var_os("CHATSERVER_SCREENSHOTS") else {
            return;
        };
        let png = self.screenshot(tab).await;
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join(format!("{}-{name}.png", size.name)), png)
            .expect("save screenshot");
    }
}
