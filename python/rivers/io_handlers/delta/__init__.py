"""Delta Lake IO handler (``pip install rivers[delta]`` plus a backend extra such as
``rivers[polars]``).

Importing this package imports deltalake; ``import rivers`` and ``import rivers.io_handlers``
never do. Frame libraries (pyarrow, polars, pandas, datafusion, pyspark) are imported only
when a read or write looks up its backend.
"""

from rivers.io_handlers.delta.base import DeltaTypeHandler as DeltaTypeHandler
from rivers.io_handlers.delta.config import MergeConfig as MergeConfig
from rivers.io_handlers.delta.config import MergeOperationsConfig as MergeOperationsConfig
from rivers.io_handlers.delta.config import PartitionExpr as PartitionExpr
from rivers.io_handlers.delta.config import WhenMatchedDelete as WhenMatchedDelete
from rivers.io_handlers.delta.config import WhenMatchedUpdate as WhenMatchedUpdate
from rivers.io_handlers.delta.config import WhenMatchedUpdateAll as WhenMatchedUpdateAll
from rivers.io_handlers.delta.config import WhenNotMatchedBySourceDelete as WhenNotMatchedBySourceDelete
from rivers.io_handlers.delta.config import WhenNotMatchedBySourceUpdate as WhenNotMatchedBySourceUpdate
from rivers.io_handlers.delta.config import WhenNotMatchedInsert as WhenNotMatchedInsert
from rivers.io_handlers.delta.config import WhenNotMatchedInsertAll as WhenNotMatchedInsertAll
from rivers.io_handlers.delta.handler import DeltaIOHandler as DeltaIOHandler

__all__ = [
    "DeltaIOHandler",
    "DeltaTypeHandler",
    "MergeConfig",
    "MergeOperationsConfig",
    "PartitionExpr",
    "WhenMatchedDelete",
    "WhenMatchedUpdate",
    "WhenMatchedUpdateAll",
    "WhenNotMatchedBySourceDelete",
    "WhenNotMatchedBySourceUpdate",
    "WhenNotMatchedInsert",
    "WhenNotMatchedInsertAll",
]
