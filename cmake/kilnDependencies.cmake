# Finds kiln's link dependencies. Included by kiln's own build and by the installed kilnConfig.cmake,
# so a consumer of an installed kiln resolves the same targets.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(TBB)
find_dependency(ZLIB)
if(KILN_WITH_MPI)
  find_dependency(MPI COMPONENTS CXX)
endif()
find_dependency(OpenBLAS CONFIG)
if(NOT TARGET kiln::openblas)
  # Debian's OpenBLASConfig.cmake sets variables only; wrap them in a target.
  add_library(kiln::openblas INTERFACE IMPORTED)
  set_target_properties(kiln::openblas PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${OpenBLAS_INCLUDE_DIRS}"
    INTERFACE_LINK_LIBRARIES "${OpenBLAS_LIBRARIES}")
endif()
