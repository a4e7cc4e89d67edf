"""Playing: environments, game suites, the policy model and the LangGraph agent."""
