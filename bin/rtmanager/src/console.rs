//! The production [`ConsoleSource`]: the operator console's reads on
//! PostgreSQL (`PgStore`'s console queries) and Redis (`StreamReader` on
//! the health and dead-letter streams).

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use rtm_domain::{GameId, StoreError};
use rtm_postgres::{GameCounts, GamesFilter, GamesPage, PgStore, WorkerLeader};
use rtm_redis::{HealthEntry, StreamReader};

use crate::http::ui::{ConsoleSource, HISTORY_SCAN};

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ProdConsole {
    pub store: PgStore,
    pub reader: StreamReader,
    /// `RTM_HEALTH_STREAM`.
    pub health_stream: String,
    /// `<RTM_LOBBY_STREAM>:dead`.
    pub dead_stream: String,
}

impl ConsoleSource for ProdConsole {
    fn counts(&self) -> BoxFuture<'_, Result<GameCounts, StoreError>> {
        self.store.console_counts().boxed()
    }

    fn games<'a>(&'a self, q: &'a GamesFilter) -> BoxFuture<'a, Result<GamesPage, StoreError>> {
        self.store.console_games(q).boxed()
    }

    fn leaders<'a>(
        &'a self,
        roles: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<WorkerLeader>, StoreError>> {
        self.store.console_leaders(roles).boxed()
    }

    fn health_history<'a>(
        &'a self,
        game: &'a GameId,
        max: usize,
    ) -> BoxFuture<'a, Result<Vec<HealthEntry>, String>> {
        async move {
            self.reader
                .game_history(&self.health_stream, game.as_str(), HISTORY_SCAN, max)
                .await
                .map_err(|e| format!("the health stream could not be read: {e}"))
        }
        .boxed()
    }

    fn dead_letters(&self) -> BoxFuture<'_, Result<u64, String>> {
        async move {
            self.reader
                .len(&self.dead_stream)
                .await
                .map_err(|e| format!("the dead-letter stream could not be read: {e}"))
        }
        .boxed()
    }
}
