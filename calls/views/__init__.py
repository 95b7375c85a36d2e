"""Server-rendered pages of the calls app: one module per page family (dashboard, list, detail, manager)."""
