"""Ingestion: files in (``files``), documents out (``documents``), chunks out (``chunks``)."""
