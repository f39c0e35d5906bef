//! Settings: flags or environment variables.

/// How to reach the cluster and the partner's own store.
#[derive(Clone, clap::Parser)]
#[command(
    name = "partner-example",
    version,
    about = "Mirror the ocop-market catalogue and follow its orders"
)]
pub struct Config {
    /// Bootstrap servers, comma-separated (`host:port`).
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:19092")]
    pub brokers: String,

    /// `plaintext` (local stack) or `sasl_ssl` (the real cluster: SCRAM-SHA-512 over TLS).
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", default_value = "plaintext",
          value_parser = ["plaintext", "sasl_ssl"])]
    pub security_protocol: String,

    /// The partner's Kafka user (`ocop-partner` on the real cluster).
    #[arg(long, env = "KAFKA_SASL_USERNAME")]
    pub sasl_username: Option<String>,

    /// Its password (environment only; never logged).
    #[arg(long, env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub sasl_password: Option<String>,

    /// CA bundle that signed the brokers' certificates.
    #[arg(long, env = "KAFKA_SSL_CA_LOCATION")]
    pub ssl_ca_location: Option<String>,

    /// Consumer group; the partner's Kafka user may only use groups starting `partner.`.
    /// A new group reads both topics from the beginning.
    #[arg(long, env = "PARTNER_GROUP", default_value = "partner.example.mirror")]
    pub group: String,

    /// Prefix of the platform's topic names (empty in production; test stacks use one).
    #[arg(long, env = "KAFKA_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,

    /// PostgreSQL URL of the partner's own store (migrated at start-up).
    #[arg(long, env = "PARTNER_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("brokers", &self.brokers)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_username", &self.sasl_username)
            .field("group", &self.group)
            .field("topic_prefix", &self.topic_prefix)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The librdkafka settings of the partner's consumer.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("security.protocol", &self.security_protocol)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        if self.security_protocol == "sasl_ssl" {
            config.set("sasl.mechanism", "SCRAM-SHA-512");
        }
        for (key, value) in [
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
        ] {
            if let Some(value) = value {
                config.set(key, value);
            }
        }
        config
    }
}
