#include "app/cli.h"

int main(int argc, char** argv) { return twinfer::cli_main(argc, argv); }
