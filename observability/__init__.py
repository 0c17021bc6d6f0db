"""What ops watch in their own tools: /metrics for Prometheus (figures read from the database at scrape time),
and beat's runs recorded so a stopped beat can be seen. Nothing else imports it but the URL map and settings."""
