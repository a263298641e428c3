# Runs PROGRAM and compares its stdout with the file EXPECTED after replacing every address
# (0x...) by ADDR, since addresses differ between runs.
execute_process(COMMAND ${PROGRAM} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${PROGRAM} exited with ${rc}")
endif()
string(REGEX REPLACE "0x[0-9a-f]+" "ADDR" out "${out}")
file(READ ${EXPECTED} expected)
if(NOT out STREQUAL expected)
    message(FATAL_ERROR "output differs\n--- expected\n${expected}--- got\n${out}")
endif()
message(STATUS "output matches ${EXPECTED}")
