"""Config sections, one module per area; each registers itself with @section."""
