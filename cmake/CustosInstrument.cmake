# custos_instrument_manifest(TARGET <target> MANIFEST <template>)
# Writes the instrument's manifest into ${CUSTOS_INSTRUMENT_DIR}/<target>/,
# with @EXECUTABLE@ replaced by the built binary's absolute path, so sensor
# configurations (tests, the demo) can name it.
function(custos_instrument_manifest)
  cmake_parse_arguments(ARG "" "TARGET;MANIFEST" "" ${ARGN})
  file(READ ${ARG_MANIFEST} content)
  string(REPLACE "@EXECUTABLE@" "$<TARGET_FILE:${ARG_TARGET}>" content "${content}")
  file(GENERATE OUTPUT ${CUSTOS_INSTRUMENT_DIR}/${ARG_TARGET}/manifest.yaml CONTENT "${content}")
endfunction()
