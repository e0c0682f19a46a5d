/* voxtile: command-line tool over the public API (include/voxtile.h);
 * the commands are in tools/cmd_*.c, the dispatcher in tools/cli.c. */
#include "cli.h"

int main(int argc, char **argv) { return vt_cli_main(argc, argv); }
