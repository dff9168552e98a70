//! The container steps operations share: create and start an engine,
//! start an existing one under its canonical name, and free a name held
//! by a leftover container.

use tracing::warn;

use super::{runtime_failure, Failed, RuntimeService};
use crate::ports::{ContainerRuntime, ContainerSpec, Ports};
use crate::{ContainerId, ErrorCode, GameId, ImageRef, OpError, RuntimeError};

impl<P: Ports> RuntimeService<P> {
    pub(super) async fn remove_if_present(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        match self.adapters.runtime.remove(id).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) fn spec(&self, game: &GameId, image: &ImageRef, name: String) -> ContainerSpec {
        ContainerSpec {
            game_id: game.clone(),
            name,
            image: image.clone(),
            state_path: self.config.state_path(game),
        }
    }

    /// Pulls if needed, creates `rtm-<game>` and starts it. A container
    /// left under that name by an interrupted operation (no record binds it
    /// any more) is removed first. A container that fails to start is
    /// removed so nothing leaks.
    pub(super) async fn create_and_start(
        &self,
        game: &GameId,
        image: &ImageRef,
    ) -> Result<ContainerId, Failed> {
        let rt = &self.adapters.runtime;
        rt.ensure_image(image)
            .await
            .map_err(|e| runtime_failure("pull", &e))?;
        let name = game.container_name();
        let spec = self.spec(game, image, name.clone());
        let id = match rt.create(&spec).await {
            Ok(id) => id,
            Err(RuntimeError::Conflict(_)) => {
                self.remove_named(game, &name).await?;
                rt.create(&spec)
                    .await
                    .map_err(|e| runtime_failure("create", &e))?
            }
            Err(e) => return Err(runtime_failure("create", &e).into()),
        };
        if let Err(e) = rt.start(&id).await {
            let error = runtime_failure("start", &e);
            if let Err(cleanup) = self.remove_if_present(&id).await {
                warn!(game_id = %game, container = %id, error = %cleanup,
                    "could not remove a container that failed to start; the reconciler will");
            }
            return Err(error.into());
        }
        Ok(id)
    }

    /// Removes the owned container of `game` called `name`, if any.
    pub(super) async fn remove_named(&self, game: &GameId, name: &str) -> Result<(), Failed> {
        self.clear_name(game, name, None).await
    }

    /// Starts the game's existing container under its canonical name; when
    /// it has vanished, creates a fresh one of the record's image.
    pub(super) async fn start_existing(
        &self,
        game: &GameId,
        container: &ContainerId,
        image: Option<&ImageRef>,
    ) -> Result<ContainerId, Failed> {
        let rt = &self.adapters.runtime;
        let info = match rt.inspect(container).await {
            Ok(info) => info,
            Err(RuntimeError::NotFound(_)) => {
                let image = image.ok_or_else(|| {
                    OpError::new(
                        ErrorCode::Conflict,
                        "the container is gone and the record names no image",
                    )
                })?;
                return self.create_and_start(game, image).await;
            }
            Err(e) => return Err(runtime_failure("inspect", &e).into()),
        };
        // A patch interrupted by a crash can leave the container parked
        // under its temporary name; engines are found by the canonical one.
        let canonical = game.container_name();
        if info.summary.name != canonical {
            self.remove_named(game, &canonical).await?;
            rt.rename(container, &canonical)
                .await
                .map_err(|e| runtime_failure("rename", &e))?;
        }
        rt.start(container)
            .await
            .map_err(|e| runtime_failure("start", &e))?;
        Ok(container.clone())
    }

    /// Removes every owned container of `game` called `name` except `keep`.
    pub(super) async fn clear_name(
        &self,
        game: &GameId,
        name: &str,
        keep: Option<&ContainerId>,
    ) -> Result<(), Failed> {
        let rt = &self.adapters.runtime;
        let containers = rt
            .list(Some(game))
            .await
            .map_err(|e| runtime_failure("list", &e))?;
        for c in containers
            .iter()
            .filter(|c| c.name == name && Some(&c.id) != keep)
        {
            warn!(game_id = %game, container = %c.id, name, "removing a leftover container that holds the name");
            self.remove_if_present(&c.id)
                .await
                .map_err(|e| runtime_failure("remove", &e))?;
        }
        Ok(())
    }
}
