"""The storage port (partition + clustering keys, ScyllaDB-shaped) and its adapters."""

from services.common.store.port import Page, PagingState, Store
from services.common.store.schema import Column, Migration, Order, Schema, Table

__all__ = ["Column", "Migration", "Order", "Page", "PagingState", "Schema", "Store", "Table"]
