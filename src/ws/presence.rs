//! Presence in bursts. When a class of 1,000 logs in at once, each arrival is news to everyone
//! already there: one frame per arrival per socket would be half a million frames. A socket
//! instead sends a presence event at once when none came in the last `WINDOW`, and holds the
//! ones that follow it until the window ends, then sends them together as one
//! `presence_batch` frame (`{"type":"presence_batch","changes":[<presence>, ...]}`, in order)
//! and opens a new window; a window with nothing held closes. So a lone change is as prompt as
//! before, and a burst costs each socket one frame per `WINDOW`. A socket that fell behind its
//! user's presence channel (events were dropped) tells its client everyone's presence again.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::session::{Session, Step};
use crate::hub::Event;
use crate::protocol::ServerFrame;

/// How long presence that follows a change is held to go out together.
pub(super) const WINDOW: Duration = Duration::from_millis(300);

/// The presence events a socket holds while a window is open.
#[derive(Default)]
pub(super) struct Held {
    texts: Vec<Utf8Bytes>,
    /// A window is open (its timer is armed).
    pub open: bool,
    /// Events were dropped while this socket was behind: once the burst is over (a window
    /// ends with nothing held), everyone's presence is sent again.
    missed: bool,
}

impl Session {
    /// A presence event from the user's channel: sent now, or held for the open window.
    pub(super) async fn presence(
        &mut self,
        held: &mut Held,
        window: Pin<&mut Sleep>,
        event: &Arc<Event>,
    ) -> Step {
        if held.open {
            held.texts.push(event.text().clone());
            return Ok(());
        }
        held.open = true;
        window.reset(Instant::now() + WINDOW);
        self.feed(event.text().clone()).await
    }

    /// Presence events were dropped while this socket was behind (a burst larger than its
    /// user's channel): its client's view may be stale. Reading every contact's presence now,
    /// in the middle of the burst, would cost as much as the burst again each time it falls
    /// behind, so it is noted and done once, when the burst is over.
    pub(super) fn presence_missed(&mut self, held: &mut Held, window: Pin<&mut Sleep>) {
        held.missed = true;
        if !held.open {
            held.open = true;
            window.reset(Instant::now() + WINDOW);
        }
    }

    /// Everyone's presence, again, after events were dropped.
    async fn presence_again(&mut self) -> Step {
        let Ok(contacts) = self.state.service.store.contacts_seen(self.user).await else {
            return Ok(()); // later changes still come; nothing better to do now
        };
        let texts = contacts
            .into_iter()
            .map(|(user_id, last_seen)| {
                let online = self.state.service.hub.is_online(user_id);
                ServerFrame::Presence {
                    user_id,
                    online,
                    last_seen,
                }
                .to_text()
            })
            .collect::<Vec<_>>();
        match texts.is_empty() {
            true => Ok(()),
            false => self.feed(batch(texts)).await,
        }
    }

    /// The window ended: what it held goes out as one frame, and a new window opens.
    pub(super) async fn presence_window_ends(
        &mut self,
        held: &mut Held,
        window: Pin<&mut Sleep>,
    ) -> Step {
        let texts = std::mem::take(&mut held.texts);
        if texts.is_empty() {
            held.open = false;
            if std::mem::take(&mut held.missed) {
                return Box::pin(self.presence_again()).await;
            }
            return Ok(());
        }
        window.reset(Instant::now() + WINDOW);
        self.feed(batch(texts)).await
    }
}

/// One frame for the held events: a single one as it is, more in a `presence_batch`. Each is
/// already a serialised `presence` frame, so the batch is put together, not serialised again.
fn batch(mut texts: Vec<Utf8Bytes>) -> Utf8Bytes {
    if texts.len() == 1 {
        return texts.remove(0);
    }
    let size = texts.iter().map(|t| t.len() + 1).sum::<usize>();
    let mut out = String::with_capacity(size + 40);
    out.push_str(r#"{"type":"presence_batch","changes":["#);
    for (i, t) in texts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(t.as_str());
    }
    out.push_str("]}");
    out.into()
}

#[cfg(test)]
mod tests {
    use super::batch;

    #[test]
    fn a_batch_is_the_held_frames_in_order() {
        let one = r#"{"type":"presence","user_id":1,"online":true}"#;
        let two = r#"{"type":"presence","user_id":2,"online":false}"#;
        assert_eq!(batch(vec![one.into()]).as_str(), one);
        let both: serde_json::Value =
            serde_json::from_str(batch(vec![one.into(), two.into()]).as_str()).unwrap();
        assert_eq!(both["type"], "presence_batch");
        assert_eq!(both["changes"][0]["user_id"], 1);
        assert_eq!(both["changes"][1]["online"], false);
    }
}
