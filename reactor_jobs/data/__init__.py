"""The Data API: each org's own tables in a Postgres schema of its own, reached only through
a role of its own, spoken to in PostgREST's wire protocol (HTTP under /data/v1/, ctx.data in
job code). See README.md, "Data", and docs/data-api.md."""
