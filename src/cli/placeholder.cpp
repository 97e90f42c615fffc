// Placeholder translation unit until the subcommands land.
namespace upcycle {}
