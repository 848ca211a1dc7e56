# custos_instrument_manifest(TARGET <target> MANIFEST <template> [NAME <name>])
# Writes the instrument's manifest into ${CUSTOS_INSTRUMENT_DIR}/<name>/
# (<name> defaults to <target>; one binary may have several manifests),
# with @EXECUTABLE@ replaced by the built binary's absolute path, so sensor
# configurations (tests, the demo) can name it.
function(custos_instrument_manifest)
  cmake_parse_arguments(ARG "" "TARGET;MANIFEST;NAME" "" ${ARGN})
  if(NOT ARG_NAME)
    set(ARG_NAME ${ARG_TARGET})
  endif()
  file(READ ${ARG_MANIFEST} content)
  string(REPLACE "@EXECUTABLE@" "$<TARGET_FILE:${ARG_TARGET}>" content "${content}")
  file(GENERATE OUTPUT ${CUSTOS_INSTRUMENT_DIR}/${ARG_NAME}/manifest.yaml CONTENT "${content}")
endfunction()
