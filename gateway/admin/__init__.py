"""The site owner's side over HTTP: the admin API (`api`), the admin page (`page`), their
authentication (`auth`), `/metrics`, and what they show (`service`). docs/admin.md."""
