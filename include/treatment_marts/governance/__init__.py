"""What IG reviewers see: the runs page data."""
