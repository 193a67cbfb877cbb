//! What bastion does with recordings after they are made: indexing their text for search
//! (`indexer`), retention (`prune`), and the key that signs them (`signing`). The recording
//! format and storage themselves are the `recorder` crate's; the queries are `db::Database`'s.

pub mod indexer;
pub mod prune;
pub mod signing;
