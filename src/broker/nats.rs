//! Instances joined by core NATS (at-most-once): the database's log fills whatever it drops.
//!
//! Subjects, under `chatserver.<the database's name>`, each message `<origin> <what>`: `.log`
//! carries committed batches (`<seq> <events as JSON>`), `.live` passing events (`<event as
//! JSON>`), `.sockets` each instance's socket count per user (for presence and the per-user
//! limit), `.limits` each login outcome and sign-up (so the limits count them all). `origin`
//! is a number each process draws at start, so an instance skips what it sent itself (it
//! delivered that locally already).
//!
//! One task per instance, the applier, hands batches to the hub in number order: its own
//! (from the writer) and others' (from NATS) wait in a reorder buffer until the one before
//! has been handed over. A number missing for `GAP_WAIT` is read from the log, and the log is
//! also read every `POLL` (every `POLL_AWAY` while the broker is away), so a batch NATS
//! dropped arrives anyway, at most that late. A batch no longer in the log (an outage longer
//! than the log keeps) cannot be recovered here: the sockets are asked to reconnect with
//! `since`, which the database answers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::connection::State;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Batch;
use crate::auth::Accounts;
use crate::config::Database;
use crate::error::{Error, Result};
use crate::hub::{Control, Hub, Outbound};
use crate::limits::{LoginGuard, RateLimit};
use crate::metrics::Metrics;
use crate::model::UserId;
use crate::store::Store;

/// How long a batch may be missing while later ones wait, before it is read from the log.
const GAP_WAIT: Duration = Duration::from_millis(40);
/// How often the log is read anyway, with the broker up and away.
const POLL: Duration = Duration::from_secs(2);
const POLL_AWAY: Duration = Duration::from_millis(200);
/// Batches read from the log per query.
const PAGE: i64 = 200;
/// Messages waiting for the broker connection; beyond, they are dropped (the log has them).
const OUTGOING: usize = 4096;

pub(super) struct Cluster {
    client: async_nats::Client,
    origin: u64,
    /// Where passing events go, known once `start` read the database's name.
    live: OnceLock<Outlet>,
    /// The writer's batches, in commit order, for the applier.
    local: mpsc::UnboundedSender<Local>,
    parts: Mutex<Option<Parts>>,
    /// To the publishing task, which alone waits on the connection.
    outgoing: mpsc::Sender<(String, Bytes)>,
    accounts: Arc<OnceLock<Arc<Accounts>>>,
    limits: Arc<OnceLock<Limits>>,
    metrics: Arc<Metrics>,
}

/// What `start` takes: the receiving ends.
struct Parts {
    local: mpsc::UnboundedReceiver<Local>,
    outgoing: mpsc::Receiver<(String, Bytes)>,
}

/// What `.limits` carries: `<origin> <this as JSON>`.
#[derive(serde::Serialize, serde::Deserialize)]
enum Counted {
    Login {
        login: String,
        ip: std::net::IpAddr,
        failed: bool,
    },
    SignUp(std::net::IpAddr),
}

/// The limits this instance shares with the others.
struct Limits {
    logins: Arc<LoginGuard>,
    signups: Arc<RateLimit>,
}

/// How often an instance says how many sockets each user has on it (and changes at once).
const SOCKETS_EVERY: Duration = Duration::from_secs(1);

struct Local {
    seq: i64,
    body: String,
    events: Vec<Outbound>,
}

impl Cluster {
    pub async fn connect(url: &str, db: &Database, metrics: Arc<Metrics>) -> Result<Cluster> {
        if db.file().is_some() {
            return Err(Error::invalid(
                "invalid_broker",
                "--broker joins instances on one PostgreSQL database: give --db postgres://…",
            ));
        }
        let client = async_nats::ConnectOptions::new()
            .name(format!("chatserver pid {}", std::process::id()))
            .connection_timeout(Duration::from_secs(5))
            // Reconnect soon after the broker is back: batches wait in the log meanwhile.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts as u64).min(1000))
            })
            .connect(url)
            .await
            .map_err(|e| Error::unavailable(format!("cannot reach the broker at {url}: {e}")))?;
        let (local_tx, local) = mpsc::unbounded_channel();
        let (outgoing_tx, outgoing) = mpsc::channel(OUTGOING);
        Ok(Cluster {
            client,
            origin: rand::random(),
            live: OnceLock::new(),
            local: local_tx,
            parts: Mutex::new(Some(Parts { local, outgoing })),
            outgoing: outgoing_tx,
            accounts: Arc::default(),
            limits: Arc::default(),
            metrics,
        })
    }

    pub fn share_limits(&self, logins: Arc<LoginGuard>, signups: Arc<RateLimit>) {
        let _ = self.limits.set(Limits { logins, signups });
    }

    /// Each user's socket count here is told to the other instances: when it changes, and
    /// all of them every second.
    fn report_sockets(&self, counts: Counts, hub: &Arc<Hub>, shutdown: &CancellationToken) {
        let changes = counts.clone();
        hub.watch_sockets(move |user, n| changes.say(&[(user, n)], false));
        tokio::spawn(counts.every_second(Arc::clone(hub), shutdown.clone()));
    }

    /// Every login outcome and sign-up here is passed to the other instances.
    fn report_limits(&self, outlet: Outlet) {
        let Some(shared) = self.limits.get() else {
            return;
        };
        let on_login = outlet.clone();
        shared.logins.report_to(Box::new(move |login, ip, failed| {
            on_login.say_json(&Counted::Login {
                login: login.to_string(),
                ip,
                failed,
            });
        }));
        shared
            .signups
            .report_to(Box::new(move |ip| outlet.say_json(&Counted::SignUp(ip))));
    }

    /// Speaking on `<prefix>.<name>`.
    fn outlet(&self, prefix: &str, name: &str) -> Outlet {
        Outlet {
            subject: format!("{prefix}.{name}"),
            origin: self.origin,
            outgoing: self.outgoing.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }

    pub fn follow_accounts(&self, accounts: Arc<Accounts>) {
        let _ = self.accounts.set(accounts);
    }

    pub fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub fn pass(&self, out: &Outbound) {
        // Not serving yet: no socket anywhere waits for it.
        if let Some(live) = self.live.get() {
            live.say_json(out);
        }
    }

    pub fn committed(&self, batch: Batch, events: Vec<Outbound>) {
        let _ = self.local.send(Local {
            seq: batch.seq,
            body: batch.body,
            events,
        });
    }

    pub async fn start(
        &self,
        hub: Arc<Hub>,
        store: Store,
        shutdown: CancellationToken,
    ) -> Result<JoinHandle<()>> {
        let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner()).take();
        let parts = parts.ok_or_else(|| Error::internal("the broker was started twice"))?;
        let (name, _) = store.cluster_head().await?;
        let prefix = format!("chatserver.{name}");
        let [log, live, sockets, limits] =
            ["log", "live", "sockets", "limits"].map(|n| self.outlet(&prefix, n));
        let subscribe = |outlet: &Outlet| {
            let subject = outlet.subject.clone();
            async move {
                (self.client.subscribe(subject).await)
                    .map_err(|e| Error::unavailable(format!("cannot subscribe on the broker: {e}")))
            }
        };
        let heard = Heard {
            log: subscribe(&log).await?,
            live: subscribe(&live).await?,
            sockets: subscribe(&sockets).await?,
            limits: subscribe(&limits).await?,
        };
        self.report_limits(limits);
        self.report_sockets(Counts(sockets), &hub, &shutdown);
        // Subscribed first: every batch after this one arrives, or is in the log.
        let (_, head) = store.cluster_head().await?;
        let _ = self.live.set(live);
        tokio::spawn(publish(
            self.client.clone(),
            parts.outgoing,
            shutdown.clone(),
        ));
        let applier = Applier {
            hub,
            store,
            applied: head,
            waiting: BTreeMap::new(),
            missing_since: None,
            metrics: Arc::clone(&self.metrics),
        };
        let inputs = Inputs {
            origin: self.origin,
            log,
            client: self.client.clone(),
            accounts: Arc::clone(&self.accounts),
            local: parts.local,
            heard,
            shared: Arc::clone(&self.limits),
        };
        Ok(tokio::spawn(applier.run(inputs, shutdown)))
    }
}

/// Publishes what the instance sends, while the broker is connected; drops it otherwise
/// (what was queued during an outage is stale by the time it is back, and in the log).
async fn publish(
    client: async_nats::Client,
    mut outgoing: mpsc::Receiver<(String, Bytes)>,
    shutdown: CancellationToken,
) {
    loop {
        let (subject, payload) = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = outgoing.recv() => match next {
                Some(next) => next,
                None => return,
            },
        };
        if client.connection_state() != State::Connected {
            continue;
        }
        if let Err(e) = client.publish(subject, payload).await {
            tracing::debug!(error = %e, "publishing on the broker");
        }
    }
}

struct Inputs {
    origin: u64,
    /// Where this instance's own batches go.
    log: Outlet,
    client: async_nats::Client,
    accounts: Arc<OnceLock<Arc<Accounts>>>,
    local: mpsc::UnboundedReceiver<Local>,
    heard: Heard,
    shared: Arc<OnceLock<Limits>>,
}

/// What the other instances say, subject by subject.
struct Heard {
    log: async_nats::Subscriber,
    live: async_nats::Subscriber,
    sockets: async_nats::Subscriber,
    limits: async_nats::Subscriber,
}

/// One subject this instance speaks on: `<origin> <what>`, sent without waiting. A full queue
/// (the broker away or slow) drops the message, which the log makes up for (batches), the
/// next full count corrects (sockets), or nobody misses (typing, presence).
#[derive(Clone)]
struct Outlet {
    subject: String,
    origin: u64,
    outgoing: mpsc::Sender<(String, Bytes)>,
    metrics: Arc<Metrics>,
}

impl Outlet {
    fn say(&self, what: &str) {
        let payload = format!("{} {what}", self.origin);
        let sent = self
            .outgoing
            .try_send((self.subject.clone(), payload.into()));
        if sent.is_err() {
            self.metrics.broker_dropped.inc();
        }
    }

    fn say_json(&self, what: &impl serde::Serialize) {
        match serde_json::to_string(what) {
            Ok(json) => self.say(&json),
            Err(e) => tracing::error!(error = %e, "a message for the broker did not serialise"),
        }
    }
}

/// What another instance said: its origin and the rest; `None` for this instance's own (or
/// what is not one of ours).
fn from_elsewhere(payload: &[u8], me: u64) -> Option<(u64, &str)> {
    let (origin, rest) = std::str::from_utf8(payload).ok()?.split_once(' ')?;
    let origin = origin.parse::<u64>().ok()?;
    (origin != me).then_some((origin, rest))
}

/// Another instance's login outcome or sign-up, counted here too.
fn heard(payload: &[u8], me: u64, shared: &OnceLock<Limits>, metrics: &Metrics) {
    let Some(shared) = shared.get() else { return };
    let Some((_, body)) = from_elsewhere(payload, me) else {
        return;
    };
    match serde_json::from_str(body) {
        Ok(Counted::Login { login, ip, failed }) => shared.logins.heard(&login, ip, failed),
        Ok(Counted::SignUp(ip)) => shared.signups.heard(ip),
        Err(_) => return,
    }
    metrics.broker_limits_heard.inc();
}

/// Says how many sockets users have here: `<0|1: all of them> <[[user, n], …]>`.
#[derive(Clone)]
struct Counts(Outlet);

impl Counts {
    fn say(&self, counts: &[(UserId, usize)], full: bool) {
        let json = serde_json::to_string(counts).unwrap_or_else(|_| "[]".into());
        self.0.say(&format!("{} {json}", u8::from(full)));
    }

    /// All counts every second: a late instance learns them, and one that stops saying them
    /// (it died) is forgotten by the others (see `hub::ELSEWHERE_TTL`).
    async fn every_second(self, hub: Arc<Hub>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(SOCKETS_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => self.say(&hub.socket_counts(), true),
            }
        }
    }
}

/// Another instance's report: its origin, whether it is all of its counts, the counts.
type Report = (u64, bool, Vec<(UserId, usize)>);

/// `<full> <counts>` from another instance.
fn parse_counts(payload: &[u8], me: u64) -> Option<Report> {
    let (origin, rest) = from_elsewhere(payload, me)?;
    let (full, body) = rest.split_once(' ')?;
    Some((origin, full == "1", serde_json::from_str(body).ok()?))
}

struct Applier {
    hub: Arc<Hub>,
    store: Store,
    /// The newest batch handed to the hub; every one before it was too.
    applied: i64,
    /// Batches that came before the one after `applied`.
    waiting: BTreeMap<i64, Vec<Outbound>>,
    /// Since when the batch after `applied` has been missing while later ones wait.
    missing_since: Option<Instant>,
    metrics: Arc<Metrics>,
}

impl Applier {
    async fn run(mut self, mut io: Inputs, shutdown: CancellationToken) {
        let mut polled = Instant::now();
        let mut ticks = tokio::time::interval(POLL_AWAY);
        loop {
            let missing = self.missing_since.map(|at| at + GAP_WAIT);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(local) = io.local.recv() => {
                    io.log.say(&format!("{} {}", local.seq, local.body));
                    self.accept(local.seq, local.events);
                }
                Some(message) = io.heard.log.next() => {
                    if let Some((seq, events)) = parse_batch(&message.payload, io.origin) {
                        self.accept(seq, events);
                    }
                }
                Some(message) = io.heard.live.next() => {
                    if let Some(out) = parse_passing(&message.payload, io.origin) {
                        if let Some(accounts) = io.accounts.get() {
                            ended_elsewhere(accounts, &out);
                        }
                        self.hub.publish(out);
                    }
                }
                Some(message) = io.heard.limits.next() => {
                    heard(&message.payload, io.origin, &io.shared, &self.metrics);
                }
                Some(message) = io.heard.sockets.next() => {
                    if let Some((origin, full, counts)) = parse_counts(&message.payload, io.origin) {
                        self.hub.sockets_elsewhere(origin, &counts, full);
                    }
                }
                _ = sleep_until(missing), if missing.is_some() => {
                    self.metrics.broker_gaps.inc();
                    self.read_log().await;
                }
                _ = ticks.tick() => {
                    let away = io.client.connection_state() != State::Connected;
                    if away || polled.elapsed() >= POLL {
                        polled = Instant::now();
                        self.read_log().await;
                    }
                }
            }
        }
    }

    /// Takes a batch; hands over every batch that is now next in line.
    fn accept(&mut self, seq: i64, events: Vec<Outbound>) {
        if seq <= self.applied {
            return; // had it (from the log, or it is from before this instance started)
        }
        self.waiting.insert(seq, events);
        self.hand_over();
    }

    fn hand_over(&mut self) {
        while let Some(events) = self.waiting.remove(&(self.applied + 1)) {
            self.applied += 1;
            for event in events {
                self.hub.publish(event);
            }
        }
        self.missing_since = match self.waiting.is_empty() {
            true => None,
            false => self.missing_since.or_else(|| Some(Instant::now())),
        };
    }

    /// Reads every batch after the last handed over from the log.
    async fn read_log(&mut self) {
        loop {
            let page = match self.store.batches_after(self.applied, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the cluster log");
                    return;
                }
            };
            let full = page.len() as i64 == PAGE;
            let first = page.first().map(|(seq, _)| *seq);
            let lost_before = first.or_else(|| self.waiting.keys().next().copied());
            if let Some(next) = lost_before.filter(|&n| n > self.applied + 1) {
                self.lost(next - 1);
            }
            for (seq, body) in page {
                match serde_json::from_str(&body) {
                    Ok(events) => self.accept(seq, events),
                    Err(e) => {
                        tracing::error!(seq, error = %e, "a logged batch did not parse");
                        self.accept(seq, Vec::new());
                    }
                }
            }
            if !full {
                return;
            }
        }
    }

    /// Batches up to `upto` are gone from the log: whatever they held never reached this
    /// instance's sockets, which reconnect with `since` to read it from the database.
    fn lost(&mut self, upto: i64) {
        tracing::warn!(
            from = self.applied + 1,
            upto,
            "batches no longer in the cluster log; sockets here reconnect"
        );
        self.metrics.broker_lost.inc();
        for user in self.hub.connected_users() {
            self.hub.publish(Outbound::User(user, Control::Reconnect));
        }
        self.applied = upto;
        self.waiting.retain(|&seq, _| seq > upto);
        self.hand_over();
    }
}

/// A session, or all of a user's, ended on another instance: their tokens are refused here.
fn ended_elsewhere(accounts: &Accounts, out: &Outbound) {
    match out {
        Outbound::User(_, Control::SessionEnded(session)) => accounts.end_session(*session),
        Outbound::User(user, Control::SessionsEnded { epoch }) => {
            accounts.set_epoch(*user, *epoch);
        }
        _ => {}
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `<seq> <events>` from another instance.
fn parse_batch(payload: &[u8], me: u64) -> Option<(i64, Vec<Outbound>)> {
    let (_, rest) = from_elsewhere(payload, me)?;
    let (seq, body) = rest.split_once(' ')?;
    Some((seq.parse().ok()?, serde_json::from_str(body).ok()?))
}

/// `<event>` from another instance.
fn parse_passing(payload: &[u8], me: u64) -> Option<Outbound> {
    serde_json::from_str(from_elsewhere(payload, me)?.1).ok()
}
