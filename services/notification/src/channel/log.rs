//! The `log` channel: each message becomes one JSON line in
//! `<NOTIFICATION_SPOOL_DIR>/notifications.jsonl` (the "sent" mail of development and
//! tests), and one line without personal data goes to the service log.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt as _;

use super::{Channel, ChannelError, Message, Receipt};
use crate::domain::delivery::ChannelKind;

/// The spool file's name inside the spool folder.
pub const SPOOL_FILE: &str = "notifications.jsonl";

pub struct LogChannel {
    path: PathBuf,
    // One writer at a time, so lines of concurrent sends never interleave.
    lock: tokio::sync::Mutex<()>,
}

impl LogChannel {
    /// Creates the spool folder if needed and opens the spool file once: a folder that
    /// cannot be created or a file that cannot be written is a start-up error. Found
    /// otherwise only message by message (a read-only root file system without a
    /// writable volume on the spool), every send would fail and be retried for ever
    /// while the service reported SERVING.
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("create notification spool folder {}", dir.display()))?;
        let path = dir.join(SPOOL_FILE);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| {
                format!(
                    "the notification spool {} cannot be written (NOTIFICATION_SPOOL_DIR must be a writable folder)",
                    path.display()
                )
            })?;
        Ok(Self {
            path,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn append(&self, line: &[u8]) -> std::io::Result<()> {
        let _guard = self.lock.lock().await;
        // Opened per message, so the file can be rotated or removed under a running
        // service.
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        file.write_all(line).await?;
        file.flush().await
    }
}

/// The spool line of a message: everything a developer wants to read.
pub fn spool_line(message: &Message) -> Vec<u8> {
    let mut line = serde_json::to_vec(&serde_json::json!({
        "notification_id": message.notification_id.to_string(),
        "order_id": message.order_id.to_string(),
        "order_code": message.order_code,
        "channel": message.channel.as_str(),
        "template": message.template,
        "to": message.address,
        "subject": message.subject,
        "body": message.body,
        "written_at": chrono::Utc::now().to_rfc3339(),
    }))
    .expect("a JSON object of strings serialises");
    line.push(b'\n');
    line
}

impl Channel for LogChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Log
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<Receipt, ChannelError>> {
        Box::pin(async move {
            self.append(&spool_line(message)).await.map_err(|err| {
                ChannelError::retryable(format!("write {}: {err}", self.path.display()))
            })?;
            tracing::info!(
                notification_id = %message.notification_id,
                order_id = %message.order_id,
                template = %message.template,
                channel = "log",
                "notification written to the spool"
            );
            Ok(Receipt::default())
        })
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn message() -> Message {
        Message {
            notification_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            order_code: "OCOP1".into(),
            customer_name: "Hoa".into(),
            channel: ChannelKind::Log,
            template: "order_confirmed".into(),
            address: "0912345123".into(),
            subject: "Đơn hàng OCOP1 đã được xác nhận".into(),
            body: "Tổng cộng: 1.250.000 ₫".into(),
        }
    }

    #[test]
    fn a_spool_that_cannot_be_written_is_a_start_up_error() {
        let dir = std::env::temp_dir().join(format!("ocop-spool-{}", Uuid::new_v4()));
        // A folder where the spool file should be: no user (root included) can open it
        // for writing.
        std::fs::create_dir_all(dir.join(SPOOL_FILE)).unwrap();
        let err = LogChannel::new(&dir)
            .err()
            .expect("an unwritable spool is refused");
        assert!(format!("{err:#}").contains("cannot be written"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn each_message_is_one_json_line_with_unescaped_vietnamese() {
        let dir = std::env::temp_dir().join(format!("ocop-spool-{}", Uuid::new_v4()));
        let channel = LogChannel::new(&dir).unwrap();
        channel.send(&message()).await.unwrap();
        channel.send(&message()).await.unwrap();
        let text = std::fs::read_to_string(channel.path()).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["to"], "0912345123");
        assert_eq!(first["body"], "Tổng cộng: 1.250.000 ₫");
        assert!(lines[0].contains("1.250.000 ₫"), "{}", lines[0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
