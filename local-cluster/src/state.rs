//! The shared state of one running cluster: what every request handler and simulator sees.

use std::time::Duration;

use tokio::sync::watch;

use crate::audit::AuditLog;
use crate::backends::Backends;
use crate::faults::Faults;
use crate::resources::Registry;
use crate::store::Store;

/// Everything a request needs, behind one `Arc`.
#[derive(Debug)]
pub struct State {
    /// Served resource types.
    pub registry: Registry,
    /// Objects.
    pub store: Store,
    /// Where APIService service references point.
    pub backends: Backends,
    /// The bearer token clients must present.
    pub token: String,
    /// Flips to `true` on shutdown; long-running watches end when it does.
    pub shutdown: watch::Receiver<bool>,
    /// How often a watch with `allowWatchBookmarks` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// The client certificate presented to APIService backends, if the front proxy is on.
    pub front_proxy: Option<crate::tls::FrontProxy>,
    /// Fault rules for chosen requests.
    pub faults: Faults,
    /// Write requests received.
    pub audit: AuditLog,
}
