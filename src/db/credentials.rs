//! The credentials of one run: the validated [`Settings`], the secret read once (when a secret
//! is the source), and one re-read when the database rejects its password.
//!
//! Every connection of a run (the lock session, the fleet's workers) asks this handle for its
//! target, so a secret is fetched once however many connections open, and a rotation noticed
//! by one worker is picked up by all of them.

use std::fmt;
use std::sync::Arc;

use tokio::sync::{Mutex, OnceCell};

use crate::aws;
use crate::db::secret::{self, SecretCreds};
use crate::db::target::{self, DbTarget, Settings};
use crate::error::Result;

/// A shareable handle; clones share the fetched secret.
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    client: OnceCell<aws_sdk_secretsmanager::Client>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    current: Option<DbTarget>,
    reread: bool,
}

impl Credentials {
    pub fn new(settings: Settings) -> Credentials {
        Self::with_client(settings, None)
    }

    /// With a ready-made Secrets Manager client (tests with `aws-smithy-mocks`).
    pub fn with_client(settings: Settings, client: Option<aws_sdk_secretsmanager::Client>) -> Credentials {
        let cell = match client {
            Some(c) => OnceCell::new_with(Some(c)),
            None => OnceCell::new(),
        };
        Credentials { inner: Arc::new(Inner { settings, client: cell, state: Mutex::default() }) }
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The target to connect to, reading the secret the first time.
    pub async fn target(&self) -> Result<DbTarget> {
        let mut state = self.inner.state.lock().await;
        if let Some(t) = &state.current {
            return Ok(t.clone());
        }
        for ignored in &self.inner.settings.ignored {
            tracing::warn!("{ignored} is ignored: {} names the database", self.source_name());
        }
        let target = self.resolve(0).await?;
        tracing::debug!("connection target: {target:?}");
        state.current = Some(target.clone());
        Ok(target)
    }

    /// The database rejected `failed`'s password. When it came from a secret, read the secret
    /// once more (AWSCURRENT may have moved to a rotated password since we read it) and return
    /// the new target; `None` when there is nothing new to try.
    pub async fn after_auth_failure(&self, failed: &DbTarget) -> Result<Option<DbTarget>> {
        if !failed.password_from_secret {
            return Ok(None);
        }
        let mut state = self.inner.state.lock().await;
        if let Some(current) = &state.current
            && current.generation > failed.generation
        {
            // Another connection already read the new version.
            return Ok(Some(current.clone()));
        }
        if state.reread {
            return Ok(None);
        }
        state.reread = true;
        let fresh = self.resolve(failed.generation + 1).await?;
        let changed = fresh.secret_version != failed.secret_version;
        tracing::warn!(
            "the database rejected the password from {}; read the secret again: {}",
            self.source_name(),
            if changed { "a new version, retrying with it" } else { "same version, nothing new to try" }
        );
        if !changed {
            return Ok(None);
        }
        state.current = Some(fresh.clone());
        Ok(Some(fresh))
    }

    async fn resolve(&self, generation: u32) -> Result<DbTarget> {
        let settings = &self.inner.settings;
        let Some(secret_ref) = settings.secret() else {
            return target::resolve(settings, None, generation);
        };
        let client = self.inner.client.get_or_try_init(|| aws::secrets::client(secret_ref)).await?;
        let value = aws::secrets::get(client, secret_ref).await?;
        let creds: SecretCreds = secret::parse(&value.text, &secret_ref.to_string())?;
        tracing::info!(
            "read the database credentials from secret {secret_ref} (version {})",
            value.version_id.as_deref().unwrap_or("unknown")
        );
        target::resolve(settings, Some((&creds, value.version_id.clone())), generation)
    }

    fn source_name(&self) -> String {
        match &self.inner.settings.source {
            target::Source::Url { from } => from.to_string(),
            target::Source::Secret { secret, from } => format!("secret {secret} ({from})"),
            target::Source::Fields => "DB_* / PG* variables".to_string(),
        }
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.state.try_lock().ok().and_then(|s| s.current.clone()) {
            Some(target) => write!(f, "{target}"),
            None => f.write_str(&self.inner.settings.describe()),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?})", self.inner.settings)
    }
}
