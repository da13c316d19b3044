//! kedge's built-in scalers, one module per trigger type, each behind a cargo feature of the
//! same name.
//!
//! [`registry`] returns a [`scaler_core::Registry`] holding every scaler this build includes.

#![warn(missing_docs)]

#[cfg(any(
    feature = "prometheus",
    feature = "rabbitmq",
    feature = "external",
    feature = "postgresql",
    feature = "kafka",
    feature = "aws-sqs-queue"
))]
mod address;
#[cfg(feature = "aws-sqs-queue")]
pub mod aws_sqs;
#[cfg(any(feature = "prometheus", feature = "external", feature = "rabbitmq"))]
mod client_tls;
#[cfg(feature = "cron")]
pub mod cron;
#[cfg(feature = "external")]
pub mod external;
#[cfg(any(feature = "prometheus", feature = "rabbitmq"))]
mod http_client;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "postgresql")]
pub mod postgresql;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;

use scaler_core::Registry;

/// A registry with every built-in scaler enabled in this build.
///
/// ```
/// let registry = scalers::registry();
/// assert!(registry.factory("cron").is_some());
/// ```
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    #[cfg(feature = "cron")]
    registry.register(cron::CronFactory);
    #[cfg(feature = "external")]
    registry.register(external::ExternalFactory);
    #[cfg(feature = "kafka")]
    registry.register(kafka::KafkaFactory);
    #[cfg(feature = "postgresql")]
    registry.register(postgresql::PostgresqlFactory);
    #[cfg(feature = "prometheus")]
    registry.register(prometheus::PrometheusFactory);
    #[cfg(feature = "rabbitmq")]
    registry.register(rabbitmq::RabbitMqFactory::new());
    #[cfg(feature = "aws-sqs-queue")]
    registry.register(aws_sqs::AwsSqsFactory::new());
    registry
}
