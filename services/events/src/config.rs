//! Kafka connection settings shared by producers, consumers and the admin client.

use rdkafka::ClientConfig;

/// How to reach the Kafka cluster. Secrets (the SASL password) come from the
/// environment and are never logged: `Debug` redacts them.
#[derive(Clone, clap::Args)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated (`host:port`).
    #[arg(
        long = "kafka-brokers",
        env = "KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,

    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[arg(long = "kafka-security-protocol", env = "KAFKA_SECURITY_PROTOCOL", default_value = "plaintext",
          value_parser = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"])]
    pub security_protocol: String,

    /// SASL mechanism when a `sasl_*` protocol is used (e.g. `SCRAM-SHA-512`).
    #[arg(long = "kafka-sasl-mechanism", env = "KAFKA_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,

    /// SASL user name.
    #[arg(long = "kafka-sasl-username", env = "KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,

    /// SASL password (environment only in production).
    #[arg(
        long = "kafka-sasl-password",
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub sasl_password: Option<String>,

    /// CA bundle to verify the brokers' TLS certificates.
    #[arg(long = "kafka-ssl-ca-location", env = "KAFKA_SSL_CA_LOCATION")]
    pub ssl_ca_location: Option<String>,

    /// Prepended to every topic and consumer group name (e.g. `staging.`), so several
    /// platforms (or test runs) can share one cluster. Services and the outbox use the
    /// logical names; the prefix is applied where records meet the broker.
    #[arg(
        long = "kafka-topic-prefix",
        env = "KAFKA_TOPIC_PREFIX",
        default_value = ""
    )]
    pub topic_prefix: String,

    /// A name for this process that stays the same across its restarts (e.g. a StatefulSet
    /// pod's name). With it each consumer joins as a static member (`group.instance.id`),
    /// so a restarted process takes its partitions straight back instead of waiting for
    /// the group to give up on the member that died. Two live processes must not share it.
    #[arg(long = "kafka-group-instance-id", env = "KAFKA_GROUP_INSTANCE_ID")]
    pub group_instance_id: Option<String>,

    /// Create the service's topics at start-up (local stacks; on Kubernetes Strimzi owns
    /// the topics and this stays off).
    #[arg(
        long = "kafka-create-topics",
        env = "KAFKA_CREATE_TOPICS",
        default_value_t = false
    )]
    pub create_topics: bool,

    /// The longest a consumer's fetch waits at the broker for new records, in ms. Apache
    /// Kafka answers as soon as a record arrives; some brokers (tansu) always hold a fetch
    /// this long, so it bounds each saga hop's latency there. Lower costs idle requests.
    #[arg(
        long = "kafka-fetch-wait-max-ms",
        env = "KAFKA_FETCH_WAIT_MAX_MS",
        default_value_t = 10
    )]
    pub fetch_wait_max_ms: u32,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field(
                "sasl_password",
                &self.sasl_password.as_ref().map(|_| "<redacted>"),
            )
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("topic_prefix", &self.topic_prefix)
            .field("group_instance_id", &self.group_instance_id)
            .field("create_topics", &self.create_topics)
            .field("fetch_wait_max_ms", &self.fetch_wait_max_ms)
            .finish()
    }
}

impl KafkaConfig {
    /// Plaintext settings for `brokers` (local stacks and tests).
    pub fn plaintext(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            security_protocol: "plaintext".into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            topic_prefix: String::new(),
            group_instance_id: None,
            create_topics: true,
            fetch_wait_max_ms: 10,
        }
    }

    /// The broker-side name of a logical topic or consumer group.
    pub fn topic(&self, logical: &str) -> String {
        format!("{}{logical}", self.topic_prefix)
    }

    /// An rdkafka client configuration with the connection settings filled in.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id)
            .set("security.protocol", &self.security_protocol);
        let optional = [
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                config.set(key, value);
            }
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::KafkaConfig;

    #[test]
    fn debug_output_never_shows_the_sasl_password() {
        let mut config = KafkaConfig::plaintext("127.0.0.1:9092");
        config.sasl_password = Some("hunter2-secret".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
