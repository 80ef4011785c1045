//! Partitions: definitions and their key arithmetic, keys and key ranges, mappings across
//! dependency edges, and position ranges (how partition status is stored).

mod backfill;
mod definition;
mod graph;
mod key;
mod key_range;
mod mapping;
mod ranges;
mod status;
mod time_format;
pub(crate) mod time_grid;

pub use backfill::{BackfillPlan, BackfillStrategy, BackfillTarget, plan_backfill};
pub use definition::{
    Coords, DAILY_FORMAT, DEFAULT_TIME_FORMAT, DYNAMIC_CAPACITY, DynamicKeys, DynamicPartitions, HOURLY_FORMAT,
    MultiPartitions, PartitionEnv, Partitions, PartitionsData, PartitionsKind, StaticPartitions, TimeWindowPartitions,
    cartesian,
};
pub(crate) use graph::GraphPartitions;
pub use graph::{PartitionedInput, StepPartitions};
pub use key::PartitionKey;
pub use key_range::{DimSelection, PartitionKeyRange};
pub use mapping::{KeySelector, MappedInput, PartitionMapping, check_edge, effective_mapping, map_keys};
pub use ranges::RangeSet;
pub use time_format::{KeyFormat, SUPPORTED_DIRECTIVES};
