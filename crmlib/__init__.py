"""crmlib: load, audit and measure a CRM export for the weekly report pack."""

__version__ = "0.1.0"
