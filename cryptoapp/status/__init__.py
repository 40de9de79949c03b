"""Pipeline status: each worker's heartbeat and the state of its sources in MongoDB, for the dashboard to show."""
