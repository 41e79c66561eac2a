"""Deployment checks (docker/, docker-compose.yml, deploy/): run by `make docker-check`."""
