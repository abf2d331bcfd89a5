// Typed NIF resources: construction that may throw, destruction through ~T, RAII handles.
// Any thread. A resource's destructor runs on whatever thread drops the last reference, so
// T's destructor must never block and never touch Python.
#pragma once

#include <erl_nif.h>

#include <cstddef>
#include <new>
#include <stdexcept>
#include <utility>

namespace erl {

template <class T>
class Resource {
public:
    // Registers the resource type; called once from the load callback. `stop` is the
    // enif_select stop callback, `down` the monitor callback.
    static bool open(ErlNifEnv* env, const char* name, ErlNifResourceDown* down = nullptr,
                     ErlNifResourceStop* stop = nullptr) {
        ErlNifResourceTypeInit init{};
        init.dtor = &destroy;
        init.stop = stop;
        init.down = down;
        init.members = down ? 3 : stop ? 2 : 1;
        type_ = enif_open_resource_type_x(env, name, &init, ERL_NIF_RT_CREATE, nullptr);
        return type_ != nullptr;
    }

    // Allocates and constructs a T. If the constructor throws, the memory is released without
    // running ~T (the slot remembers whether construction finished).
    template <class... Args>
    static T* make(Args&&... args) {
        void* mem = enif_alloc_resource(type_, sizeof(Slot));
        auto* slot = static_cast<Slot*>(mem);
        slot->constructed = false;
        try {
            new (&slot->storage) T(std::forward<Args>(args)...);
        } catch (...) {
            enif_release_resource(mem);
            throw;
        }
        slot->constructed = true;
        return reinterpret_cast<T*>(&slot->storage);
    }

    // The T behind a term, or nullptr when the term is not a resource of this type.
    static T* get(ErlNifEnv* env, ERL_NIF_TERM term) {
        void* mem = nullptr;
        if (!enif_get_resource(env, term, type_, &mem)) return nullptr;
        return reinterpret_cast<T*>(&static_cast<Slot*>(mem)->storage);
    }

    static void keep(T* obj) { enif_keep_resource(slot_of(obj)); }
    static void release(T* obj) { enif_release_resource(slot_of(obj)); }
    static ERL_NIF_TERM term(ErlNifEnv* env, T* obj) { return enif_make_resource(env, slot_of(obj)); }
    static void* slot_of(T* obj) { return reinterpret_cast<char*>(obj) - offsetof(Slot, storage); }
    static T* from_slot(void* mem) { return reinterpret_cast<T*>(&static_cast<Slot*>(mem)->storage); }

private:
    struct Slot {
        bool constructed;
        alignas(T) unsigned char storage[sizeof(T)];
    };

    static void destroy(ErlNifEnv*, void* mem) {
        auto* slot = static_cast<Slot*>(mem);
        if (slot->constructed) reinterpret_cast<T*>(&slot->storage)->~T();
    }

    static inline ErlNifResourceType* type_ = nullptr;
};

// An owning reference to a resource: copying keeps, destruction releases.
// The by-value operator= (copy-and-swap) is both the copy and the move assignment.
template <class T>
class ResourcePtr {  // NOLINT(cppcoreguidelines-special-member-functions)
public:
    ResourcePtr() = default;
    // Takes over the reference returned by Resource<T>::make.
    static ResourcePtr adopt(T* obj) { return ResourcePtr(obj); }
    // Adds a reference to an object somebody else owns.
    static ResourcePtr share(T* obj) {
        if (obj) Resource<T>::keep(obj);
        return ResourcePtr(obj);
    }
    ResourcePtr(const ResourcePtr& o) : obj_(o.obj_) {
        if (obj_) Resource<T>::keep(obj_);
    }
    ResourcePtr(ResourcePtr&& o) noexcept : obj_(std::exchange(o.obj_, nullptr)) {}
    ResourcePtr& operator=(ResourcePtr o) noexcept {
        std::swap(obj_, o.obj_);
        return *this;
    }
    ~ResourcePtr() {
        if (obj_) Resource<T>::release(obj_);
    }

    T* get() const { return obj_; }
    // Gives the reference up to the caller (adopt() takes it back).
    T* release() { return std::exchange(obj_, nullptr); }
    T* operator->() const { return obj_; }
    T& operator*() const { return *obj_; }
    explicit operator bool() const { return obj_ != nullptr; }

private:
    explicit ResourcePtr(T* obj) : obj_(obj) {}
    T* obj_ = nullptr;
};

}  // namespace erl
