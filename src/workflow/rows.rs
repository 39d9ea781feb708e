//! The rows of `mlcube ls` and `user ls` for cohort's view of main: read from the rows files
//! kept with the listing index of exactly that commit, else computed from its records (and
//! then kept with that listing, when it is the one kept).

use crate::registry::StateStore;
use crate::registry::rows::{self, CubeRow, UserRow};
use crate::trust::Index;

use super::registry_ops::Opened;
use super::{Ctx, Result};

/// What the rows of [`Opened::cube_rows`] borrow from: the rows file read whole, or the
/// records they were computed from.
#[derive(Default)]
pub struct CubeRowsSource {
    bytes: Vec<u8>,
    ix: Option<Index>,
}

impl Opened {
    /// Every cube version on cohort's view of main, in listing order (by name, then version).
    pub fn cube_rows<'a>(
        &self,
        ctx: &Ctx,
        source: &'a mut CubeRowsSource,
    ) -> Result<Vec<CubeRow<'a>>> {
        let store = StateStore::new(ctx.home);
        let view = self.view()?;
        let CubeRowsSource { bytes, ix } = source;
        if let Some(read) = store.rows(&self.id, view, rows::CUBES) {
            *bytes = read;
            let bytes: &'a [u8] = bytes;
            if let Some(r) = rows::decode_cubes(bytes) {
                return Ok(r);
            }
        }
        let ix: &'a Index =
            ix.insert(self.listing(ctx, &["mlcubes/"], &|p| p.ends_with("/cube.toml"))?);
        let r = rows::cube_rows(ix);
        // Rows only save time: failing to save them changes nothing.
        let _ = store.save_rows(&self.id, view, rows::CUBES, &rows::encode_cubes(&r));
        Ok(r)
    }

    /// Everyone in the registry on cohort's view of main (see [`rows::user_rows`]).
    pub fn user_rows(&self, ctx: &Ctx) -> Result<Vec<UserRow>> {
        let store = StateStore::new(ctx.home);
        let view = self.view()?;
        if let Some(r) = store
            .rows(&self.id, view, rows::USERS)
            .and_then(|b| rows::decode_users(&b))
        {
            return Ok(r);
        }
        let r = rows::user_rows(&self.listing(ctx, &["users/", "grants/"], &|_| true)?);
        if let Some(bytes) = rows::encode_users(&r) {
            let _ = store.save_rows(&self.id, view, rows::USERS, &bytes);
        }
        Ok(r)
    }
}
