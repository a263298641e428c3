# find_package(TAlloc) support: provides the imported target TAlloc::talloc.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
include(${CMAKE_CURRENT_LIST_DIR}/TAllocTargets.cmake)
