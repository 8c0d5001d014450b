"""Study assembly: a study is complete when it has been quiet for a while; then its completion hook runs."""
