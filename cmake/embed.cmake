# Writes OUT, a C++ file defining NAME (const char[]) and NAME##Size with the bytes of IN, as a
# raw string literal (IN must not contain `)WRAITHHTML"`): how the dashboard page gets into the
# binary with no file to install.
file(READ ${IN} content)
string(FIND "${content}" ")WRAITHHTML\"" bad)
if(NOT bad EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )WRAITHHTML\"")
endif()
file(WRITE ${OUT}.tmp "// Generated from ${IN} by cmake/embed.cmake: do not edit.\n#include <cstddef>\n\nnamespace ${NAMESPACE} {\nextern const char ${NAME}[];\nextern const size_t ${NAME}Size;\nconst char ${NAME}[] = R\"WRAITHHTML(${content})WRAITHHTML\";\nconst size_t ${NAME}Size = sizeof(${NAME}) - 1;\n}\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
