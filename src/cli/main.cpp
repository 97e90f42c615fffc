// upcycle entry point: dispatches to the subcommands in cli/ (placeholder until the CLI lands).
int main() { return 0; }
