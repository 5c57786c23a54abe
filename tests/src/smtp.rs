//! An SMTP server in the test process, over loopback: it speaks enough of
//! RFC 5321 for a real client (EHLO, STARTTLS when it has a certificate,
//! MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT), keeps every message it accepts, and can answer the
//! next messages with an error (a full mailbox: 452; an unknown one: 550).
//! Messages are read back with `mail-parser`, which shares no code with
//! the collector's mail crate. `start_on` a port nothing listened on yet
//! (`site::free_port`) plays a server that was down and comes back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One message accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body), dot-unstuffed.
    pub data: Vec<u8>,
    /// Whether it came over TLS (after STARTTLS).
    pub secure: bool,
}

impl Mail {
    fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a MIME message")
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    /// The text body, decoded (quoted-printable, base64, charset).
    pub fn text(&self) -> String {
        self.parsed().body_text(0).unwrap_or_default().into_owned()
    }

    /// The first `http…/partners/sign-in/<token>` link in the body.
    pub fn sign_in_link(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("http")?;
        let link: String = text[start..].chars().take_while(|c| !c.is_whitespace()).collect();
        link.contains("/partners/sign-in/").then_some(link)
    }
}

#[derive(Default)]
struct State {
    mails: Mutex<Vec<Mail>>,
    /// Replies to the next DATA commands' ends, in turn (then 250).
    refusals: Mutex<VecDeque<&'static str>>,
    arrived: Notify,
}

pub struct SmtpServer {
    pub port: u16,
    state: Arc<State>,
    /// Ends the server's thread when dropped.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop.take().map(|stop| stop.send(()));
    }
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        Self::start_on(0)
    }

    pub fn start_on(port: u16) -> SmtpServer {
        Self::listen(port, None)
    }

    /// Starts a server offering STARTTLS, its certificate for `localhost`
    /// signed by the CA `postgres::certificates` makes in `dir`
    /// (`dir/ca.pem`).
    pub fn start_starttls(dir: &std::path::Path) -> SmtpServer {
        Self::listen(0, Some(crate::receiver::tls_acceptor(dir)))
    }

    /// Listens on `port` (0: any free one), on a thread and runtime of its
    /// own, so that it keeps answering while the test blocks.
    fn listen(port: u16, tls: Option<tokio_rustls::TlsAcceptor>) -> SmtpServer {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("an SMTP port");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let port = listener.local_addr().expect("its address").port();
        let state = Arc::new(State::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("a tokio listener");
                let accept = async {
                    while let Ok((socket, _)) = listener.accept().await {
                        tokio::spawn(session(socket, shared.clone(), tls.clone()));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
        });
        SmtpServer {
            port,
            state,
            stop: Some(stop),
        }
    }

    /// Answers the next message with `reply` (e.g. "452 4.2.2 mailbox full").
    pub fn refuse_next(&self, reply: &'static str) {
        self.state.refusals.lock().unwrap().push_back(reply);
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.state.mails.lock().unwrap().clone()
    }

    /// Waits (20 s at most) until `n` messages have arrived; all of them.
    pub async fn wait_for(&self, n: usize) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let arrived = self.state.arrived.notified();
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "{} emails arrived, not {n}: {:?}",
                    mails.len(),
                    mails.iter().map(Mail::subject).collect::<Vec<_>>()
                );
            }
        }
    }

    /// Waits (20 s at most) for a message to `to` whose subject starts
    /// with `subject`; the first such.
    pub async fn wait_for_mail(&self, to: &str, subject: &str) -> Mail {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let arrived = self.state.arrived.notified();
            if let Some(mail) = self.to(to).into_iter().find(|m| m.subject().starts_with(subject)) {
                return mail;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let subjects: Vec<(Vec<String>, String)> =
                    self.mails().iter().map(|m| (m.to.clone(), m.subject())).collect();
                panic!("no email to {to} about {subject:?} arrived: {subjects:?}");
            }
        }
    }

    /// The messages to `to`.
    pub fn to(&self, to: &str) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == to))
            .collect()
    }
}

/// One client's connection: a conversation, and another over TLS if the
/// client asks for it (STARTTLS, offered when the server has a certificate).
async fn session(socket: tokio::net::TcpStream, state: Arc<State>, tls: Option<tokio_rustls::TlsAcceptor>) {
    let Some(plain) = converse(socket, &state, tls.is_some(), false).await else {
        return;
    };
    if let Some(acceptor) = tls {
        if let Ok(secure) = acceptor.accept(plain).await {
            converse(secure, &state, false, true).await;
        }
    }
}

/// One conversation over `stream` (`secure`: over TLS already). Returns
/// the stream when the client asked to start TLS (offered if `offer_tls`).
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    state: &State,
    offer_tls: bool,
    secure: bool,
) -> Option<S> {
    let mut lines = BufReader::new(stream);
    // (After STARTTLS the client speaks first: EHLO again.)
    if !secure
        && lines
            .get_mut()
            .write_all(b"220 test.invalid ESMTP in-test server\r\n")
            .await
            .is_err()
    {
        return None;
    }
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let answer = match verb.as_str() {
            "EHLO" if offer_tls => "250-test.invalid\r\n250-STARTTLS\r\n250-8BITMIME\r\n250 SMTPUTF8".to_owned(),
            "EHLO" => "250-test.invalid\r\n250-8BITMIME\r\n250 SMTPUTF8".to_owned(),
            "HELO" => "250 test.invalid".to_owned(),
            "STARTTLS" if offer_tls => {
                lines
                    .get_mut()
                    .write_all(b"220 2.0.0 ready to start TLS\r\n")
                    .await
                    .ok()?;
                return Some(lines.into_inner());
            }
            "MAIL" => {
                from = address(&command);
                to.clear();
                "250 2.1.0 OK".to_owned()
            }
            "RCPT" => {
                to.push(address(&command));
                "250 2.1.5 OK".to_owned()
            }
            "DATA" => {
                lines
                    .get_mut()
                    .write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                    .await
                    .ok()?;
                let mut data = Vec::new();
                loop {
                    let mut line = Vec::new();
                    match lines.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return None,
                        Ok(_) => {}
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 4.5.2).
                    let line = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
                    data.extend_from_slice(line);
                }
                match state.refusals.lock().unwrap().pop_front() {
                    Some(refusal) => refusal.to_owned(),
                    None => {
                        state.mails.lock().unwrap().push(Mail {
                            from: from.clone(),
                            to: to.clone(),
                            data,
                            secure,
                        });
                        state.arrived.notify_waiters();
                        "250 2.0.0 queued".to_owned()
                    }
                }
            }
            "RSET" => {
                from.clear();
                to.clear();
                "250 2.0.0 OK".to_owned()
            }
            "NOOP" => "250 2.0.0 OK".to_owned(),
            "QUIT" => {
                let _ = lines.get_mut().write_all(b"221 2.0.0 bye\r\n").await;
                return None;
            }
            _ => "502 5.5.2 not implemented".to_owned(),
        };
        lines
            .get_mut()
            .write_all(format!("{answer}\r\n").as_bytes())
            .await
            .ok()?;
    }
}

/// The address in `MAIL FROM:<a@b>` or `RCPT TO:<a@b>`.
fn address(command: &str) -> String {
    let start = command.find('<').map(|i| i + 1).unwrap_or(0);
    let end = command[start..].find('>').map(|i| start + i).unwrap_or(command.len());
    command[start..end].to_owned()
}
