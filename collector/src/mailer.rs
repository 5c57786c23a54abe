//! The mailer: sends what `store::mail` holds over SMTP (lettre), at least
//! once. One loop per collector: it claims the due emails (a lease, as the
//! webhook dispatcher's: a collector that dies mid-send leaves them due
//! again), sends them a few at a time, and records how each ended; a
//! refused or unreachable server means a retry on the schedule, never a
//! lost email, and no request ever waits for it.

use crate::config::SmtpFile;
use crate::store::mail::{self, Due, Sent};
use crate::store::Store;
use anyhow::{Context, Result};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Emails sent at once.
const AT_ONCE: usize = 8;
/// How long a claim holds an email: past an attempt's timeout.
const LEASE_MS: i64 = 120_000;
/// How long one SMTP conversation may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How often the loop looks for due emails.
const POLL: Duration = Duration::from_secs(1);
/// How often sent and failed emails past their keeping are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// An SMTP server to send through, as `[smtp]` in the config file says.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(smtp: &SmtpFile) -> Result<Mailer> {
        let from: Mailbox = smtp
            .from
            .parse()
            .with_context(|| format!("[smtp] from: {:?} is not an address", smtp.from))?;
        let tls = || -> Result<TlsParameters> {
            let mut builder = TlsParameters::builder(smtp.host.clone());
            if let Some(path) = &smtp.ca_file {
                let pem = std::fs::read(path).with_context(|| format!("[smtp] ca_file {}", path.display()))?;
                builder = builder.add_root_certificate(Certificate::from_pem(&pem)?);
            }
            Ok(builder.build_rustls()?)
        };
        let (tls, default_port) = match smtp.tls.as_str() {
            "starttls" => (Tls::Required(tls()?), 587),
            "tls" => (Tls::Wrapper(tls()?), 465),
            "none" => (Tls::None, 25),
            other => anyhow::bail!("[smtp] tls: {other:?} is not starttls, tls or none"),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
            .port(smtp.port.unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(TIMEOUT));
        if !smtp.username.is_empty() {
            let password = std::env::var("GROWSUMO_SMTP_PASSWORD").unwrap_or_else(|_| smtp.password.clone());
            builder = builder.credentials(Credentials::new(smtp.username.clone(), password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    /// One attempt at sending `due`.
    async fn send(&self, due: &Due) -> Sent {
        let to: Mailbox = match due.recipient.parse() {
            Ok(to) => to,
            Err(e) => return Sent::Refused(format!("recipient: {e}")),
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(due.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(due.body.clone());
        let message = match message {
            Ok(message) => message,
            Err(e) => return Sent::Refused(format!("message: {e}")),
        };
        // (lettre's own timeout covers connecting only: a server that
        // accepts and then says nothing would hold the send for ever.)
        match tokio::time::timeout(TIMEOUT, self.transport.send(message)).await {
            Err(_) => Sent::Retry(format!("no answer within {} s", TIMEOUT.as_secs())),
            Ok(Ok(_)) => Sent::Ok,
            Ok(Err(e)) if refuses_recipient(&e) => Sent::Refused(e.to_string()),
            Ok(Err(e)) => Sent::Retry(e.to_string()),
        }
    }
}

/// Whether the server refused the recipient for good (550 no such
/// mailbox, 551, 553 bad address): the only answers not worth another
/// try. Any other refusal (a wrong password, relaying denied, a full
/// disk) is the sender's to fix, and the email waits for it.
fn refuses_recipient(e: &lettre::transport::smtp::Error) -> bool {
    e.is_permanent()
        && e.status()
            .is_some_and(|code| matches!(code.to_string().as_str(), "550" | "551" | "553"))
}

/// Runs the mailer until its task is aborted (emails being sent then are
/// sent again once their lease ends). Without an SMTP server it only drops
/// the emails that waited too long, and deletes old ones.
pub async fn run(store: Store, mailer: Option<Mailer>) {
    let mut last_prune: Option<tokio::time::Instant> = None;
    let Some(mailer) = mailer else {
        loop {
            let keeper = store.clone();
            let _ = tokio::task::spawn_blocking(move || {
                keeper.write_quietly(|tx, now| {
                    mail::expire(tx, now)?;
                    mail::prune(tx, now)
                })
            })
            .await;
            tokio::time::sleep(PRUNE_EVERY).await;
        }
    };
    loop {
        let (reader, now) = (store.clone(), store.clock().now_ms());
        let due = tokio::task::spawn_blocking(move || reader.read(|db| mail::anything_due(db, now))).await;
        let claimed = match due {
            Ok(Ok(true)) => {
                let writer = store.clone();
                tokio::task::spawn_blocking(move || {
                    writer.write_quietly(|tx, now| mail::claim(tx, now, LEASE_MS, AT_ONCE))
                })
                .await
            }
            _ => Ok(Ok(Vec::new())),
        };
        let claimed = match claimed {
            Ok(Ok(claimed)) => claimed,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "mailer: cannot claim emails");
                Vec::new()
            }
            Err(e) => {
                tracing::error!(error = %e, "mailer: claiming panicked");
                Vec::new()
            }
        };
        let full = claimed.len() == AT_ONCE;
        if !claimed.is_empty() {
            let mut sends = tokio::task::JoinSet::new();
            for due in claimed {
                let mailer = mailer.clone();
                sends.spawn(async move {
                    let sent = mailer.send(&due).await;
                    if let Sent::Retry(e) | Sent::Refused(e) = &sent {
                        tracing::warn!(email = due.id, error = %e, "mailer: an email was not sent");
                    }
                    (due.id, sent)
                });
            }
            let ended: Vec<(i64, Sent)> = sends.join_all().await;
            let writer = store.clone();
            let recorded =
                tokio::task::spawn_blocking(move || writer.write_quietly(|tx, now| mail::record(tx, &ended, now)))
                    .await;
            if !matches!(recorded, Ok(Ok(()))) {
                tracing::error!("mailer: cannot record sent emails (they are sent again after their lease)");
            }
        }
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            let pruner = store.clone();
            let _ = tokio::task::spawn_blocking(move || pruner.write_quietly(mail::prune)).await;
        }
        if !full {
            tokio::time::sleep(POLL).await;
        }
    }
}
