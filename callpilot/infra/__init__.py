"""Infrastructure: Asterisk adapters, database, configuration.  Carries no policy and imports
no domain (ivr, acd, admin_web) and nothing of the application (checked by import-linter)."""
